//! [`Store`], implemented once over any [`Backend`]: every method is a read on the backend's
//! readers or one write transaction that commits before the method returns.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use keyward_core::{
    CredentialId, Email, ExternalId, InstanceId, InvitationId, KeyDigest, MessageId,
    OrganizationId, OrganizationRef, ProjectId, RateLimit, Role, ScopeNames, Timestamp, UserId,
    WebhookId,
};
use tokio::sync::broadcast;

use serde_json::{Map, Value};

use crate::sql::audit::{self, Event};
use crate::sql::webhooks::{self, Verb};
use crate::sql::{
    Read, Write, credentials, credits, email, idempotency, identities, instances, invitations,
    key_events, organizations, portal, projects, rates, sessions, sso, usage,
};
use crate::{
    Actor, AttemptRecord, AuditContext, AuditEventRecord, AuditFilter, AuthFailureCount,
    ClaimedDelivery, ClaimedEmail, CredentialChanges, CredentialFilter, CredentialRecord,
    CredentialUsageRow, CreditLease, CreditOwner, DatabaseState, DeliveryRecord, EmailOutcome,
    IdempotencyClaim, IdempotentAnswer, IdentityLimits, IdentityLimitsRecord, InFlightLimits,
    InstanceRecord, Invalidation, InvitationAnswer, InvitationKey, InvitationRecord,
    InvitationRefusal, Joined, KeyEventPage, LoginAttempt, LoginFailures, MemberRecord,
    MembershipChange, MembershipRecord, NewCredential, NewEmail, NewInstance, NewInvitation,
    NewOrganization, NewOwner, NewPortalLink, NewProject, NewSession, NewWebhook, NextStep,
    OpenInvitation, OrganizationChange, OrganizationChanges, OrganizationFilter,
    OrganizationPolicy, OrganizationRecord, Page, Paged, PolicyChanges, PortalRedemption,
    ProjectChanges, ProjectDeletion, ProjectRecord, RateBucket, RateReturn, ResetRequest,
    SessionRecord, SsoPerson, SsoRefusal, SsoSignIn, Store, StoreError, StoreStats, StoredCredits,
    UsageCount, UsageRow, UsageUpdate, UserRecord, WebhookChanges, WebhookRecord,
};

/// What differs between databases: how to reach them, and what a node learns from them.
pub(crate) trait Backend: Send + Sync + 'static {
    type Reader<'a>: Read
    where
        Self: 'a;
    type Tx<'a>: Write
    where
        Self: 'a;

    /// Where reads go; fails at once if the database is known to be away.
    fn reader(&self) -> Result<Self::Reader<'_>, StoreError>;

    /// Begins a write transaction.
    fn begin(&self) -> impl Future<Output = Result<Self::Tx<'_>, StoreError>> + Send;

    fn commit<'a>(tx: Self::Tx<'a>) -> impl Future<Output = Result<(), StoreError>> + Send + 'a
    where
        Self: 'a;

    /// Whether the database answers (and, where it matters, can write).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn close(&self) -> impl Future<Output = ()> + Send;

    fn invalidations(&self) -> Option<broadcast::Receiver<Invalidation>> {
        None
    }

    fn state(&self) -> DatabaseState {
        DatabaseState::default()
    }
}

pub(crate) struct SqlStore<B> {
    backend: B,
    write_transactions: AtomicU64,
    credential_lookups: AtomicU64,
}

impl<B: Backend> SqlStore<B> {
    pub(crate) fn new(backend: B) -> Self {
        Self {
            backend,
            write_transactions: AtomicU64::new(0),
            credential_lookups: AtomicU64::new(0),
        }
    }

    async fn begin(&self) -> Result<B::Tx<'_>, StoreError> {
        self.write_transactions.fetch_add(1, Ordering::Relaxed);
        self.backend.begin().await
    }
}

/// Runs `$body` (an expression that uses `$tx`, the transaction) in one write transaction,
/// and commits it if `$body` succeeded; a failed one is rolled back when dropped.
macro_rules! in_transaction {
    ($store:ident, |$tx:ident| $body:expr) => {{
        let mut transaction = $store.begin().await?;
        let value = {
            let $tx = &mut transaction;
            $body
        };
        B::commit(transaction).await?;
        Ok(value)
    }};
}

#[async_trait]
impl<B: Backend> Store for SqlStore<B> {
    async fn ping(&self) -> Result<(), StoreError> {
        self.backend.ping().await
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            write_transactions: self.write_transactions.load(Ordering::Relaxed),
            credential_lookups: self.credential_lookups.load(Ordering::Relaxed),
        }
    }

    async fn close(&self) {
        self.backend.close().await
    }

    fn invalidations(&self) -> Option<broadcast::Receiver<Invalidation>> {
        self.backend.invalidations()
    }

    fn state(&self) -> DatabaseState {
        self.backend.state()
    }

    async fn create_organization(
        &self,
        audit: &AuditContext,
        organization: NewOrganization,
        owner: NewOwner,
        first_key: Option<NewCredential>,
    ) -> Result<(), StoreError> {
        in_transaction!(self, |tx| {
            organizations::create(tx, &organization, Some(&owner)).await?;
            let owner_id = match &owner {
                NewOwner::Create { id, .. }
                | NewOwner::Provision { id, .. }
                | NewOwner::Existing(id) => *id,
            };
            let event = Event {
                organization: Some(organization.id),
                action: "organization.created".into(),
                target_type: "organization",
                target_id: organization.id.to_string(),
                changes: audit::created(vec![
                    ("name", Value::String(organization.name.to_string())),
                    ("owner", Value::String(owner_id.to_string())),
                ]),
            };
            audit::record(tx, audit, event).await?;
            if let Some(first_key) = &first_key {
                let record = credentials::insert(tx, first_key).await?;
                audit::record(tx, audit, credential_created(&record)).await?;
            }
        })
    }

    async fn get_organization(
        &self,
        id: OrganizationId,
    ) -> Result<Option<OrganizationRecord>, StoreError> {
        organizations::get(&mut self.backend.reader()?, id).await
    }

    async fn provision_organization(
        &self,
        audit: &AuditContext,
        organization: NewOrganization,
        owner: Option<NewOwner>,
    ) -> Result<OrganizationRecord, StoreError> {
        in_transaction!(self, |tx| {
            organizations::create(tx, &organization, owner.as_ref()).await?;
            let mut fields = vec![
                ("name", Value::String(organization.name.to_string())),
                (
                    "external_id",
                    audit::text(organization.external_id.as_ref()),
                ),
            ];
            let owner_id = match &owner {
                Some(
                    NewOwner::Create { id, .. }
                    | NewOwner::Provision { id, .. }
                    | NewOwner::Existing(id),
                ) => Some(*id),
                None => None,
            };
            if let Some(owner_id) = owner_id {
                fields.push(("owner", Value::String(owner_id.to_string())));
            }
            let event = organization_event(organization.id, "created", audit::created(fields));
            audit::record(tx, audit, event).await?;
            if let Some(owner_id) = owner_id {
                let changes = audit::created(vec![("role", Value::String("owner".into()))]);
                let event = member_event(organization.id, owner_id, "added", changes);
                audit::record(tx, audit, event).await?;
            }
            organizations::get(tx, organization.id)
                .await?
                .ok_or(StoreError::NotFound("organization"))?
        })
    }

    async fn find_organization(
        &self,
        reference: &OrganizationRef,
    ) -> Result<Option<OrganizationRecord>, StoreError> {
        let reader = &mut self.backend.reader()?;
        let found = match reference {
            OrganizationRef::Id(id) => organizations::get(reader, *id).await?,
            OrganizationRef::External(external) => {
                organizations::find_by_external_id(reader, external).await?
            }
        };
        Ok(found.filter(|organization| !organization.id.is_installation()))
    }

    async fn list_organizations(
        &self,
        filter: &OrganizationFilter,
        page: Page,
    ) -> Result<Paged<OrganizationRecord>, StoreError> {
        organizations::list(&mut self.backend.reader()?, filter, page).await
    }

    async fn update_organization(
        &self,
        audit: &AuditContext,
        id: OrganizationId,
        changes: OrganizationChanges,
        at: Timestamp,
    ) -> Result<Option<OrganizationChange>, StoreError> {
        in_transaction!(self, |tx| {
            organizations::lock(tx, id).await?;
            match organizations::get(tx, id).await? {
                None => None,
                Some(before) => {
                    let name = changes.name.clone().unwrap_or(before.name.clone());
                    let external_id = match &changes.external_id {
                        Some(external_id) => external_id.clone(),
                        None => before.external_id.clone(),
                    };
                    organizations::rename(tx, id, &name, external_id.as_ref()).await?;
                    let policy = changes.policy.apply(before.policy);
                    organizations::set_policy(tx, id, policy).await?;
                    let mut fields = vec![
                        (
                            "name",
                            Value::String(before.name.to_string()),
                            Value::String(name.to_string()),
                        ),
                        (
                            "external_id",
                            audit::text(before.external_id.as_ref()),
                            audit::text(external_id.as_ref()),
                        ),
                    ];
                    fields.extend(policy_fields(&before.policy, &policy));
                    let changed = audit::changed(fields);
                    if !changed.is_empty() {
                        let event = organization_event(id, "updated", changed);
                        audit::record(tx, audit, event).await?;
                    }
                    let mut affected = Vec::new();
                    let suspended = before.suspended_at.is_some();
                    if let Some(suspend) = changes.suspended
                        && suspend != suspended
                    {
                        let at = suspend.then_some(at);
                        affected = organizations::set_suspended(tx, id, at).await?;
                        let verb = if suspend { "suspended" } else { "resumed" };
                        let changes = audit::changed(vec![(
                            "suspended_at",
                            audit::time(before.suspended_at),
                            audit::time(at),
                        )]);
                        audit::record(tx, audit, organization_event(id, verb, changes)).await?;
                    }
                    let record = organizations::get(tx, id)
                        .await?
                        .ok_or(StoreError::NotFound("organization"))?;
                    Some(OrganizationChange { record, affected })
                }
            }
        })
    }

    async fn delete_organization(
        &self,
        audit: &AuditContext,
        id: OrganizationId,
        at: Timestamp,
    ) -> Result<Option<OrganizationChange>, StoreError> {
        in_transaction!(self, |tx| {
            organizations::lock(tx, id).await?;
            match organizations::get(tx, id).await? {
                None => None,
                Some(record) => {
                    let revoked = organizations::delete(tx, id, at).await?;
                    let mut changes = audit::removed(vec![
                        ("name", Value::String(record.name.to_string())),
                        ("external_id", audit::text(record.external_id.as_ref())),
                    ]);
                    changes.insert(
                        "revoked_credentials".into(),
                        serde_json::json!({ "after": revoked.len() }),
                    );
                    audit::record(tx, audit, organization_event(id, "deleted", changes)).await?;
                    for credential in &revoked {
                        if let Some(record) = credentials::get(tx, id, credential.id).await? {
                            let event = webhooks::credential_event(&record, Verb::Revoked);
                            webhooks::enqueue(tx, audit, &record, event, Vec::new()).await?;
                        }
                    }
                    let affected = revoked.into_iter().map(|c| c.digest).collect();
                    Some(OrganizationChange { record, affected })
                }
            }
        })
    }

    async fn create_portal_link(
        &self,
        audit: &AuditContext,
        link: NewPortalLink,
    ) -> Result<UserId, StoreError> {
        in_transaction!(self, |tx| {
            organizations::active_policy(tx, link.organization).await?;
            refuse_limited_actor(tx, audit).await?;
            let at = link.created_at;
            let user = portal::person(tx, link.organization, &link.person, at).await?;
            let before = portal::set_role(tx, link.organization, user, link.role, at).await?;
            if let Some(event) = membership_event(link.organization, user, before, Some(link.role))
            {
                audit::record(tx, audit, event).await?;
            }
            portal::insert(tx, &link, user).await?;
            let event = Event {
                organization: Some(link.organization),
                action: "portal_link.created".into(),
                target_type: "user",
                target_id: user.to_string(),
                changes: audit::created(vec![
                    ("pages", Value::String(link.confinement.pages.clone())),
                    (
                        "return_url",
                        Value::String(link.confinement.return_url.clone()),
                    ),
                ]),
            };
            audit::record(tx, audit, event).await?;
            user
        })
    }

    async fn sign_in_with_provider(
        &self,
        audit: &AuditContext,
        person: SsoPerson,
        claimed: Option<Vec<(keyward_core::ExternalId, Role)>>,
        at: Timestamp,
    ) -> Result<Result<SsoSignIn, SsoRefusal>, StoreError> {
        in_transaction!(self, |tx| {
            match sso::person(tx, &person, at).await? {
                Err(refusal) => Err(refusal),
                Ok((user_id, email)) => {
                    // What the claim changes is the person's own doing, as they sign in.
                    let audit = AuditContext {
                        actor: Actor::User {
                            id: user_id,
                            email: email.as_str().to_owned(),
                        },
                        ..audit.clone()
                    };
                    let claimed = match &claimed {
                        None => None,
                        Some(claimed) => {
                            let (found, events) =
                                sso::sync_memberships(tx, user_id, claimed, at).await?;
                            for (organization, before, after) in events {
                                if let Some(event) =
                                    membership_event(organization, user_id, before, after)
                                {
                                    audit::record(tx, &audit, event).await?;
                                }
                            }
                            Some(found)
                        }
                    };
                    Ok(SsoSignIn {
                        user_id,
                        email,
                        claimed,
                    })
                }
            }
        })
    }

    async fn enqueue_email(&self, email: NewEmail) -> Result<(), StoreError> {
        in_transaction!(self, |tx| email::enqueue(tx, &email).await?)
    }

    async fn claim_emails(
        &self,
        now: Timestamp,
        lease_seconds: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedEmail>, StoreError> {
        in_transaction!(self, |tx| email::claim(tx, now, lease_seconds, limit)
            .await?)
    }

    async fn finish_email(
        &self,
        id: uuid::Uuid,
        outcome: EmailOutcome,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        in_transaction!(self, |tx| email::finish(tx, id, &outcome, now).await?)
    }

    async fn request_password_reset(
        &self,
        audit: &AuditContext,
        address: &Email,
        message: NewEmail,
        token_digest: KeyDigest,
        expires_at: Timestamp,
        max_per_hour: i64,
    ) -> Result<ResetRequest, StoreError> {
        in_transaction!(self, |tx| {
            let (outcome, user) = email::request_reset(
                tx,
                address,
                &message,
                &token_digest,
                expires_at,
                max_per_hour,
            )
            .await?;
            if let (ResetRequest::Queued, Some(user)) = (outcome, user) {
                let event = Event {
                    organization: None,
                    action: "user.password_reset_requested".into(),
                    target_type: "user",
                    target_id: user.to_string(),
                    changes: Map::new(),
                };
                audit::record(tx, audit, event).await?;
            }
            outcome
        })
    }

    async fn password_reset_email(
        &self,
        token_digest: &KeyDigest,
        now: Timestamp,
    ) -> Result<Option<Email>, StoreError> {
        email::reset_email(&mut self.backend.reader()?, token_digest, now).await
    }

    async fn reset_password(
        &self,
        audit: &AuditContext,
        token_digest: &KeyDigest,
        password_hash: String,
        now: Timestamp,
    ) -> Result<Option<UserId>, StoreError> {
        in_transaction!(self, |tx| {
            let reset = email::reset_password(tx, token_digest, &password_hash, now).await?;
            if let Some((user, address)) = &reset {
                let audit = AuditContext {
                    actor: Actor::User {
                        id: *user,
                        email: address.as_str().to_owned(),
                    },
                    ..audit.clone()
                };
                let event = Event {
                    organization: None,
                    action: "user.password_reset".into(),
                    target_type: "user",
                    target_id: user.to_string(),
                    changes: Map::new(),
                };
                audit::record(tx, &audit, event).await?;
            }
            reset.map(|(user, _)| user)
        })
    }

    async fn create_invitation(
        &self,
        audit: &AuditContext,
        invitation: NewInvitation,
    ) -> Result<InvitationRecord, StoreError> {
        in_transaction!(self, |tx| {
            // Emails count against the organization's daily cap exactly. (Locked before it is
            // share-locked below: two creations never wait on each other's share lock.)
            organizations::lock(tx, invitation.organization_id).await?;
            organizations::active_policy(tx, invitation.organization_id).await?;
            let record = invitations::insert(tx, &audit.actor, &invitation).await?;
            let changes = audit::created(vec![
                ("email", Value::String(record.email.to_string())),
                ("role", Value::String(record.role.as_str().into())),
            ]);
            audit::record(tx, audit, invitation_event(&record, "created", changes)).await?;
            record
        })
    }

    async fn list_invitations(
        &self,
        organization: OrganizationId,
    ) -> Result<Vec<InvitationRecord>, StoreError> {
        invitations::list(&mut self.backend.reader()?, organization).await
    }

    async fn get_invitation(
        &self,
        organization: OrganizationId,
        id: InvitationId,
    ) -> Result<Option<InvitationRecord>, StoreError> {
        invitations::get(&mut self.backend.reader()?, organization, id).await
    }

    async fn cancel_invitation(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        id: InvitationId,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        in_transaction!(self, |tx| {
            let cancelled = invitations::cancel(tx, organization, id, at).await?;
            if cancelled && let Some(record) = invitations::get(tx, organization, id).await? {
                let event = invitation_event(&record, "cancelled", Map::new());
                audit::record(tx, audit, event).await?;
            }
            cancelled
        })
    }

    async fn resend_invitation(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        id: InvitationId,
        expires_at: Timestamp,
        link: Option<(NewEmail, KeyDigest)>,
    ) -> Result<Option<InvitationRecord>, StoreError> {
        in_transaction!(self, |tx| {
            organizations::lock(tx, organization).await?;
            let before = invitations::get(tx, organization, id).await?;
            let record =
                invitations::resend(tx, &audit.actor, organization, id, expires_at, &link).await?;
            if let (Some(before), Some(record)) = (&before, &record) {
                let changes = audit::changed(vec![(
                    "expires_at",
                    Value::from(before.expires_at.unix_seconds()),
                    Value::from(record.expires_at.unix_seconds()),
                )]);
                audit::record(tx, audit, invitation_event(record, "resent", changes)).await?;
            }
            record
        })
    }

    async fn invitation_by_link(
        &self,
        token_digest: &KeyDigest,
        now: Timestamp,
    ) -> Result<Option<OpenInvitation>, StoreError> {
        invitations::by_link(&mut self.backend.reader()?, token_digest, now).await
    }

    async fn invitations_for(
        &self,
        email: &Email,
        now: Timestamp,
    ) -> Result<Vec<OpenInvitation>, StoreError> {
        invitations::for_email(&mut self.backend.reader()?, email, now).await
    }

    async fn answer_invitation(
        &self,
        audit: &AuditContext,
        key: InvitationKey,
        answer: InvitationAnswer,
        at: Timestamp,
    ) -> Result<Result<Joined, InvitationRefusal>, StoreError> {
        in_transaction!(self, |tx| {
            match invitations::answer(tx, &key, &answer, at).await? {
                Err(refusal) => Err(refusal),
                Ok((invitation, joined)) => {
                    let event = match answer {
                        InvitationAnswer::Decline(_) => {
                            invitation_event(&invitation, "declined", Map::new())
                        }
                        InvitationAnswer::Accept(_) if !joined.added => {
                            invitation_event(&invitation, "accepted", Map::new())
                        }
                        InvitationAnswer::Accept(_) => {
                            let changes = audit::created(vec![
                                ("role", Value::String(invitation.role.as_str().into())),
                                ("invitation", Value::String(invitation.id.to_string())),
                            ]);
                            member_event(
                                invitation.organization_id,
                                joined.user_id,
                                "added",
                                changes,
                            )
                        }
                    };
                    audit::record(tx, audit, event).await?;
                    Ok(joined)
                }
            }
        })
    }

    async fn redeem_portal_link(
        &self,
        code_digest: &KeyDigest,
        now: Timestamp,
    ) -> Result<Option<PortalRedemption>, StoreError> {
        in_transaction!(self, |tx| portal::redeem(tx, code_digest, now).await?)
    }

    async fn add_organization_member(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        person: NewOwner,
        role: Role,
        at: Timestamp,
    ) -> Result<UserId, StoreError> {
        in_transaction!(self, |tx| {
            organizations::active_policy(tx, organization).await?;
            let user = organizations::insert_person(tx, &person, at).await?;
            organizations::add_member(tx, organization, user, role, at).await?;
            let changes = audit::created(vec![("role", Value::String(role.as_str().into()))]);
            let event = member_event(organization, user, "added", changes);
            audit::record(tx, audit, event).await?;
            user
        })
    }

    async fn set_organization_policy(
        &self,
        audit: &AuditContext,
        id: OrganizationId,
        changes: PolicyChanges,
    ) -> Result<Option<OrganizationRecord>, StoreError> {
        in_transaction!(self, |tx| {
            organizations::lock(tx, id).await?;
            let before = organizations::get(tx, id).await?;
            let policy = before.as_ref().map(|before| changes.apply(before.policy));
            if let (Some(before), Some(policy)) = (&before, policy) {
                organizations::set_policy(tx, id, policy).await?;
                let changes = audit::changed(policy_fields(&before.policy, &policy));
                if !changes.is_empty() {
                    let event = Event {
                        organization: Some(id),
                        action: "organization.policy_changed".into(),
                        target_type: "organization",
                        target_id: id.to_string(),
                        changes,
                    };
                    audit::record(tx, audit, event).await?;
                }
            }
            before
                .zip(policy)
                .map(|(before, policy)| OrganizationRecord { policy, ..before })
        })
    }

    async fn find_user_by_external_id(
        &self,
        external_id: &keyward_core::ExternalId,
    ) -> Result<Option<UserRecord>, StoreError> {
        organizations::find_user_by_external_id(&mut self.backend.reader()?, external_id).await
    }

    async fn find_user_by_email(&self, email: &Email) -> Result<Option<UserRecord>, StoreError> {
        organizations::find_user_by_email(&mut self.backend.reader()?, email).await
    }

    async fn memberships_of(&self, user: UserId) -> Result<Vec<MembershipRecord>, StoreError> {
        organizations::memberships_of(&mut self.backend.reader()?, user).await
    }

    async fn members(&self, organization: OrganizationId) -> Result<Vec<MemberRecord>, StoreError> {
        organizations::members(&mut self.backend.reader()?, organization).await
    }

    async fn add_member(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        user: UserId,
        role: Role,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        in_transaction!(self, |tx| {
            organizations::active_policy(tx, organization).await?;
            refuse_limited_actor(tx, audit).await?;
            organizations::add_member(tx, organization, user, role, at).await?;
            let changes = audit::created(vec![("role", Value::String(role.as_str().into()))]);
            audit::record(
                tx,
                audit,
                member_event(organization, user, "added", changes),
            )
            .await?;
        })
    }

    async fn change_member_role(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        user: UserId,
        from: Role,
        to: Role,
    ) -> Result<MembershipChange, StoreError> {
        in_transaction!(self, |tx| {
            refuse_limited_actor(tx, audit).await?;
            let change = organizations::change_role(tx, organization, user, from, Some(to)).await?;
            if change == MembershipChange::Done && from != to {
                let changes = audit::changed(vec![(
                    "role",
                    Value::String(from.as_str().into()),
                    Value::String(to.as_str().into()),
                )]);
                let event = member_event(organization, user, "role_changed", changes);
                audit::record(tx, audit, event).await?;
            }
            change
        })
    }

    async fn remove_member(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        user: UserId,
        from: Role,
    ) -> Result<MembershipChange, StoreError> {
        in_transaction!(self, |tx| {
            let change = organizations::change_role(tx, organization, user, from, None).await?;
            if change == MembershipChange::Done {
                let changes = audit::removed(vec![("role", Value::String(from.as_str().into()))]);
                let event = member_event(organization, user, "removed", changes);
                audit::record(tx, audit, event).await?;
            }
            change
        })
    }

    async fn create_session(
        &self,
        audit: &AuditContext,
        session: NewSession,
    ) -> Result<(), StoreError> {
        in_transaction!(self, |tx| {
            sessions::create(tx, &session).await?;
            let event = Event {
                organization: session.organization_id,
                action: "user.logged_in".into(),
                target_type: "user",
                target_id: session.user_id.to_string(),
                changes: Map::new(),
            };
            audit::record(tx, audit, event).await?;
        })
    }

    async fn find_session(
        &self,
        token_digest: &KeyDigest,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError> {
        sessions::find(&mut self.backend.reader()?, token_digest, now).await
    }

    async fn set_session_organization(
        &self,
        token_digest: &KeyDigest,
        organization: OrganizationId,
    ) -> Result<(), StoreError> {
        in_transaction!(self, |tx| sessions::set_organization(
            tx,
            token_digest,
            organization
        )
        .await?)
    }

    async fn delete_session(
        &self,
        audit: &AuditContext,
        token_digest: &KeyDigest,
    ) -> Result<(), StoreError> {
        in_transaction!(self, |tx| {
            if let Some((user, organization)) = sessions::delete(tx, token_digest).await? {
                let event = Event {
                    organization,
                    action: "user.logged_out".into(),
                    target_type: "user",
                    target_id: user.to_string(),
                    changes: Map::new(),
                };
                audit::record(tx, audit, event).await?;
            }
        })
    }

    async fn login_failures(
        &self,
        email: &Email,
        client_ip: &str,
    ) -> Result<Option<LoginFailures>, StoreError> {
        sessions::login_failures(&mut self.backend.reader()?, email, client_ip).await
    }

    async fn begin_login_attempt(
        &self,
        email: &Email,
        client_ip: &str,
        at: Timestamp,
        max_failures: u32,
        lockout_seconds: i64,
    ) -> Result<LoginAttempt, StoreError> {
        in_transaction!(self, |tx| {
            sessions::begin_login_attempt(tx, email, client_ip, at, max_failures, lockout_seconds)
                .await?
        })
    }

    async fn clear_login_failures(&self, email: &Email, client_ip: &str) -> Result<(), StoreError> {
        in_transaction!(self, |tx| sessions::clear_login_failures(
            tx, email, client_ip
        )
        .await?)
    }

    async fn find_credential_by_digest(
        &self,
        digest: &KeyDigest,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        self.credential_lookups.fetch_add(1, Ordering::Relaxed);
        credentials::find_by_digest(&mut self.backend.reader()?, digest).await
    }

    async fn insert_credential(
        &self,
        audit: &AuditContext,
        credential: NewCredential,
    ) -> Result<CredentialRecord, StoreError> {
        in_transaction!(self, |tx| {
            let record = credentials::insert(tx, &credential).await?;
            audit::record(tx, audit, credential_created(&record)).await?;
            let event = webhooks::credential_event(&record, Verb::Created);
            webhooks::enqueue(tx, audit, &record, event, Vec::new()).await?;
            record
        })
    }

    async fn list_credentials(
        &self,
        organization: OrganizationId,
        filter: &CredentialFilter,
        page: Page,
    ) -> Result<Paged<CredentialRecord>, StoreError> {
        credentials::list(&mut self.backend.reader()?, organization, filter, page).await
    }

    async fn get_credential(
        &self,
        organization: OrganizationId,
        id: CredentialId,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        credentials::get(&mut self.backend.reader()?, organization, id).await
    }

    async fn update_credential(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        id: CredentialId,
        changes: CredentialChanges,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        in_transaction!(self, |tx| {
            // Changing credits, or which identity's limits a credential shares.
            if (changes.credits.is_some() || changes.external_id.is_some())
                && let Actor::Credential { id: actor, .. } = &audit.actor
            {
                credits::refuse_if_limited(tx, Some(*actor)).await?;
            }
            if changes.external_id.is_some() {
                identities::hold_organization(tx, organization).await?;
            }
            credentials::lock(tx, organization, id).await?;
            let before = credentials::get(tx, organization, id).await?;
            let after = credentials::update(tx, organization, id, changes).await?;
            if let (Some(before), Some(after)) = (&before, &after) {
                let changes = audit::changed(vec![
                    (
                        "name",
                        Value::String(before.name.to_string()),
                        Value::String(after.name.to_string()),
                    ),
                    (
                        "rate_limit",
                        audit::rate_limit(before),
                        audit::rate_limit(after),
                    ),
                    (
                        "allowed_cidrs",
                        audit::allowed_cidrs(before),
                        audit::allowed_cidrs(after),
                    ),
                    (
                        "external_id",
                        audit::external_id(before),
                        audit::external_id(after),
                    ),
                    ("meta", audit::meta(before), audit::meta(after)),
                    ("credits", audit::credits(before), audit::credits(after)),
                ]);
                if !changes.is_empty() {
                    let event = credential_event(after, "updated", changes);
                    audit::record(tx, audit, event).await?;
                }
            }
            after
        })
    }

    async fn revoke_credential(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        id: CredentialId,
        at: Timestamp,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        in_transaction!(self, |tx| {
            credentials::lock(tx, organization, id).await?;
            let before = credentials::get(tx, organization, id).await?;
            let after = credentials::revoke(tx, organization, id, at).await?;
            if let (Some(before), Some(after)) = (&before, &after)
                && before.revoked_at.is_none()
                && after.revoked_at.is_some()
            {
                let changes = audit::changed(vec![(
                    "revoked_at",
                    Value::Null,
                    audit::time(after.revoked_at),
                )]);
                let event = credential_event(after, "revoked", changes);
                audit::record(tx, audit, event).await?;
                let event = webhooks::credential_event(after, Verb::Revoked);
                webhooks::enqueue(tx, audit, after, event, Vec::new()).await?;
            }
            after
        })
    }

    async fn report_exposed(
        &self,
        audit: &AuditContext,
        digests: &[KeyDigest],
        source: &str,
        revoke: Option<bool>,
        at: Timestamp,
        email: bool,
    ) -> Result<Vec<CredentialRecord>, StoreError> {
        in_transaction!(self, |tx| {
            let mut exposed = Vec::new();
            for digest in digests {
                let (record, mut changes) =
                    match credentials::expose(tx, digest, source, at, revoke).await? {
                        None => continue,
                        Some(credentials::Exposure::Marked(record)) => {
                            let changes = audit::created(vec![
                                ("exposed_source", Value::String(source.to_owned())),
                                ("exposed_at", audit::time(Some(at))),
                            ]);
                            (record, changes)
                        }
                        // Flagged by an earlier report: this one revokes it.
                        Some(credentials::Exposure::Revoked(record)) => {
                            (record, Default::default())
                        }
                    };
                let revoke = record.revoked_at.is_some();
                if revoke {
                    changes.extend(audit::changed(vec![(
                        "revoked_at",
                        Value::Null,
                        audit::time(record.revoked_at),
                    )]));
                }
                audit::record(tx, audit, credential_event(&record, "leaked", changes)).await?;
                let action = if revoke { "revoked" } else { "flagged" };
                let extra = vec![
                    ("source", Value::String(source.to_owned())),
                    ("action", Value::String(action.into())),
                ];
                let leaked = keyward_core::webhook::EventType::CredentialLeaked;
                webhooks::enqueue(tx, audit, &record, leaked, extra).await?;
                if revoke {
                    let event = webhooks::credential_event(&record, Verb::Revoked);
                    webhooks::enqueue(tx, audit, &record, event, Vec::new()).await?;
                }
                if email {
                    let consequence = if revoke {
                        "It was revoked at once: programs using it are refused. Create a new \
                         one and put it in their place."
                    } else {
                        "It still works, as the organization's policy says: create a new one, \
                         put it in its place, then revoke this one."
                    };
                    let mut extra = Map::new();
                    extra.insert("where".into(), Value::String(source.to_owned()));
                    extra.insert("consequence".into(), Value::String(consequence.into()));
                    email::notify_about(tx, &record, "credential_leaked", extra, at).await?;
                }
                exposed.push(record);
            }
            exposed
        })
    }

    async fn count_exposed(
        &self,
        organization: OrganizationId,
        since: Timestamp,
    ) -> Result<u64, StoreError> {
        credentials::count_exposed(&mut self.backend.reader()?, organization, since).await
    }

    async fn rotate_credential(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        old: CredentialId,
        new: NewCredential,
        ends_at: Timestamp,
    ) -> Result<Option<(CredentialRecord, CredentialRecord)>, StoreError> {
        in_transaction!(self, |tx| {
            let rotated = credentials::rotate(tx, organization, old, &new, ends_at).await?;
            if let Some((old, replacement)) = &rotated {
                audit::record(tx, audit, credential_created(replacement)).await?;
                let changes = audit::created(vec![
                    ("rotation_ends_at", audit::time(Some(ends_at))),
                    ("replaced_by", Value::String(replacement.id.to_string())),
                ]);
                audit::record(tx, audit, credential_event(old, "rotated", changes)).await?;
                let event = webhooks::credential_event(replacement, Verb::Created);
                webhooks::enqueue(tx, audit, replacement, event, Vec::new()).await?;
                let event = webhooks::credential_event(old, Verb::Rotated);
                webhooks::enqueue(tx, audit, old, event, Vec::new()).await?;
            }
            rotated
        })
    }

    async fn scope_usage(&self, now: Timestamp) -> Result<Vec<(ScopeNames, u64)>, StoreError> {
        credentials::scope_usage(&mut self.backend.reader()?, now).await
    }

    async fn credential_addresses(
        &self,
        organization: OrganizationId,
        id: CredentialId,
    ) -> Result<Vec<(String, Timestamp)>, StoreError> {
        credentials::addresses(&mut self.backend.reader()?, organization, id).await
    }

    async fn record_usage(&self, batch: &[UsageUpdate]) -> Result<u64, StoreError> {
        if batch.is_empty() {
            return Ok(0);
        }
        in_transaction!(self, |tx| credentials::record_usage(tx, batch).await?)
    }

    async fn take_credits(
        &self,
        owner: CreditOwner,
        want: i64,
        needed: i64,
    ) -> Result<Option<CreditLease>, StoreError> {
        in_transaction!(self, |tx| {
            let taken = credits::take(tx, owner, want, needed).await?;
            match taken {
                None => None,
                Some((lease, events)) => {
                    let record = match owner {
                        CreditOwner::Credential(credential) if !events.is_empty() => {
                            credentials::by_id(tx, credential).await?
                        }
                        _ => None,
                    };
                    if let Some(record) = record {
                        for (event, extra) in events {
                            webhooks::enqueue(tx, &AuditContext::SYSTEM, &record, event, extra)
                                .await?;
                        }
                    }
                    Some(lease)
                }
            }
        })
    }

    async fn give_back_credits(
        &self,
        owner: CreditOwner,
        amount: i64,
        generation: i64,
        period: i64,
    ) -> Result<bool, StoreError> {
        in_transaction!(self, |tx| credits::give_back(
            tx, owner, amount, generation, period
        )
        .await?)
    }

    async fn take_rate(
        &self,
        bucket: &RateBucket,
        limit: RateLimit,
        want: u32,
        give_back: Option<RateReturn>,
        now: i64,
    ) -> Result<keyward_core::rate_limit::Take, StoreError> {
        in_transaction!(self, |tx| rates::take(
            tx, bucket, limit, want, give_back, now
        )
        .await?)
    }

    async fn set_identity_limits(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        external_id: &ExternalId,
        limits: IdentityLimits,
    ) -> Result<(IdentityLimitsRecord, Vec<KeyDigest>), StoreError> {
        in_transaction!(self, |tx| {
            // First, before any row of the identity's: every change of it locks in one order.
            identities::lock_organization(tx, organization).await?;
            refuse_if_held(tx, audit).await?;
            let before = identities::get(tx, organization, external_id).await?;
            let (after, affected) = identities::set(tx, organization, external_id, limits).await?;
            let fields = |record: Option<&IdentityLimitsRecord>| {
                (
                    record.map_or(Value::Null, |r| audit::rate_limit_value(r.rate_limit)),
                    record.map_or(Value::Null, |r| audit::credits_value(r.credits.as_ref())),
                )
            };
            let (rate_before, credits_before) = fields(before.as_ref());
            let (rate_after, credits_after) = fields(Some(&after));
            // Credits carry their generation: setting them, even to the same values, changes it.
            let changes = audit::changed(vec![
                ("rate_limit", rate_before, rate_after),
                ("credits", credits_before, credits_after),
            ]);
            let event = identity_event(organization, external_id, "limits_set", changes);
            audit::record(tx, audit, event).await?;
            (after, affected)
        })
    }

    async fn identity_limits(
        &self,
        organization: OrganizationId,
        external_id: &ExternalId,
    ) -> Result<Option<IdentityLimitsRecord>, StoreError> {
        in_transaction!(self, |tx| identities::get(tx, organization, external_id)
            .await?)
    }

    async fn delete_identity_limits(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        external_id: &ExternalId,
    ) -> Result<Option<Vec<KeyDigest>>, StoreError> {
        in_transaction!(self, |tx| {
            identities::lock_organization(tx, organization).await?;
            refuse_if_held(tx, audit).await?;
            match identities::delete(tx, organization, external_id).await? {
                None => None,
                Some((before, affected)) => {
                    let changes = audit::removed(vec![
                        ("rate_limit", audit::rate_limit_value(before.rate_limit)),
                        ("credits", audit::credits_value(before.credits.as_ref())),
                    ]);
                    let event =
                        identity_event(organization, external_id, "limits_deleted", changes);
                    audit::record(tx, audit, event).await?;
                    Some(affected)
                }
            }
        })
    }

    async fn current_credits(
        &self,
        owner: CreditOwner,
    ) -> Result<Option<StoredCredits>, StoreError> {
        in_transaction!(self, |tx| credits::current(tx, owner).await?)
    }

    async fn add_usage_counts(&self, batch: &[UsageCount]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        in_transaction!(self, |tx| usage::add(tx, batch).await?)
    }

    async fn credential_usage(
        &self,
        organization: OrganizationId,
        credential: CredentialId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<UsageRow>, StoreError> {
        usage::of_credential(
            &mut self.backend.reader()?,
            organization,
            credential,
            from,
            to,
        )
        .await
    }

    async fn organization_usage(
        &self,
        organization: OrganizationId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<UsageRow>, StoreError> {
        usage::of_organization(&mut self.backend.reader()?, organization, from, to).await
    }

    async fn usage_by_credential(
        &self,
        organization: OrganizationId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<CredentialUsageRow>, StoreError> {
        usage::by_credential(&mut self.backend.reader()?, organization, from, to).await
    }

    async fn prune_usage(&self, before: Timestamp, limit: i64) -> Result<u64, StoreError> {
        in_transaction!(self, |tx| usage::prune(tx, before, limit).await?)
    }

    async fn prune_rate_buckets(&self, now: i64, limit: i64) -> Result<u64, StoreError> {
        in_transaction!(self, |tx| rates::prune(tx, now, limit).await?)
    }

    async fn key_events(
        &self,
        organization: OrganizationId,
        after: i64,
        limit: i64,
    ) -> Result<KeyEventPage, StoreError> {
        key_events::page(&mut self.backend.reader()?, organization, after, limit).await
    }

    async fn prune_key_events(&self, before: Timestamp, limit: i64) -> Result<u64, StoreError> {
        in_transaction!(self, |tx| key_events::prune(tx, before, limit).await?)
    }

    async fn record_audit_event(
        &self,
        audit: &AuditContext,
        organization: Option<OrganizationId>,
        action: &str,
        target_type: &'static str,
        target_id: &str,
    ) -> Result<(), StoreError> {
        in_transaction!(self, |tx| {
            let event = Event {
                organization,
                action: action.to_owned(),
                target_type,
                target_id: target_id.to_owned(),
                changes: Map::new(),
            };
            audit::record(tx, audit, event).await?;
        })
    }

    async fn record_auth_failures(&self, batch: &[AuthFailureCount]) -> Result<u64, StoreError> {
        if batch.is_empty() {
            return Ok(0);
        }
        in_transaction!(self, |tx| {
            for failure in batch {
                // The actor is the credential presented, named by its hint, when it was one.
                let actor = match (failure.organization, failure.credential) {
                    (Some(organization), Some(id)) => Actor::Credential {
                        id,
                        hint: credentials::get(tx, organization, id)
                            .await?
                            .map(|record| record.hint)
                            .unwrap_or_default(),
                    },
                    _ => Actor::System,
                };
                let (target_type, target_id) = match (failure.credential, failure.client_ip) {
                    (Some(id), _) => (audit::credential_type(id), id.to_string()),
                    (None, Some(ip)) => ("address", ip.to_string()),
                    (None, None) => ("address", "unknown".to_owned()),
                };
                let context = AuditContext {
                    actor,
                    client_ip: failure.client_ip.map(|ip| ip.to_string()),
                    user_agent: None,
                    request_id: None,
                };
                let event = Event {
                    organization: failure.organization,
                    action: "auth.failed".into(),
                    target_type,
                    target_id,
                    changes: audit::created(vec![
                        ("reason", Value::String(failure.reason.into())),
                        ("count", Value::from(failure.count)),
                        ("first_at", audit::time(Some(failure.first_at))),
                        ("last_at", audit::time(Some(failure.last_at))),
                    ]),
                };
                audit::record(tx, &context, event).await?;
            }
            batch.len() as u64
        })
    }

    async fn list_audit_events(
        &self,
        organization: OrganizationId,
        filter: &AuditFilter,
        page: Page,
    ) -> Result<Paged<AuditEventRecord>, StoreError> {
        audit::list(
            &mut self.backend.reader()?,
            Some(organization),
            filter,
            page,
        )
        .await
    }

    async fn list_installation_events(
        &self,
        filter: &AuditFilter,
        page: Page,
    ) -> Result<Paged<AuditEventRecord>, StoreError> {
        audit::list(&mut self.backend.reader()?, None, filter, page).await
    }

    async fn prune_audit_events(&self, before: Timestamp, limit: i64) -> Result<u64, StoreError> {
        in_transaction!(self, |tx| audit::prune(tx, before, limit).await?)
    }

    async fn claim_idempotency_key(
        &self,
        caller: &str,
        key: &str,
        fingerprint: &[u8; 32],
        lease_until: Timestamp,
        expired_before: Timestamp,
    ) -> Result<IdempotencyClaim, StoreError> {
        in_transaction!(self, |tx| {
            idempotency::claim(tx, caller, key, fingerprint, lease_until, expired_before).await?
        })
    }

    async fn answer_idempotency_key(
        &self,
        caller: &str,
        key: &str,
        answer: &IdempotentAnswer,
    ) -> Result<(), StoreError> {
        in_transaction!(self, |tx| idempotency::finish(tx, caller, key, answer)
            .await?)
    }

    async fn release_idempotency_key(&self, caller: &str, key: &str) -> Result<(), StoreError> {
        in_transaction!(self, |tx| idempotency::release(tx, caller, key).await?)
    }

    async fn prune_idempotency_keys(
        &self,
        before: Timestamp,
        limit: i64,
    ) -> Result<u64, StoreError> {
        in_transaction!(self, |tx| idempotency::prune(tx, before, limit).await?)
    }

    async fn insert_webhook(
        &self,
        audit: &AuditContext,
        webhook: NewWebhook,
    ) -> Result<WebhookRecord, StoreError> {
        in_transaction!(self, |tx| {
            let record = webhooks::insert(tx, &webhook).await?;
            let changes = audit::created(webhook_fields(&record));
            audit::record(tx, audit, webhook_event(&record, "created", changes)).await?;
            record
        })
    }

    async fn list_webhooks(
        &self,
        organization: OrganizationId,
    ) -> Result<Vec<WebhookRecord>, StoreError> {
        webhooks::list(&mut self.backend.reader()?, organization).await
    }

    async fn get_webhook(
        &self,
        organization: OrganizationId,
        id: WebhookId,
    ) -> Result<Option<WebhookRecord>, StoreError> {
        webhooks::get(&mut self.backend.reader()?, organization, id).await
    }

    async fn update_webhook(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        id: WebhookId,
        changes: WebhookChanges,
    ) -> Result<Option<WebhookRecord>, StoreError> {
        in_transaction!(self, |tx| {
            // Locked (PostgreSQL): what is recorded as before is what was changed.
            let before = webhooks::get(tx, organization, id).await?;
            let after = match before {
                Some(_) => {
                    let now = tx.now();
                    webhooks::update(tx, organization, id, &changes, now).await?
                }
                None => None,
            };
            if let (Some(before), Some(after)) = (&before, &after) {
                let fields = webhook_fields(before)
                    .into_iter()
                    .zip(webhook_fields(after))
                    .map(|((name, old), (_, new))| (name, old, new))
                    .collect();
                let mut changes = audit::changed(fields);
                if before.url != after.url && !changes.contains_key("url") {
                    // Another path or query on the same origin: recorded as a change all the
                    // same, though what is shown of it looks alike.
                    let url = |record: &WebhookRecord| Value::String(audit_url(&record.url));
                    changes.insert(
                        "url".to_owned(),
                        serde_json::json!({ "before": url(before), "after": url(after) }),
                    );
                }
                if !changes.is_empty() {
                    audit::record(tx, audit, webhook_event(after, "updated", changes)).await?;
                }
            }
            after
        })
    }

    async fn delete_webhook(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        id: WebhookId,
    ) -> Result<bool, StoreError> {
        in_transaction!(self, |tx| {
            let before = webhooks::get(tx, organization, id).await?;
            let deleted = webhooks::delete(tx, organization, id).await?;
            if let (Some(before), true) = (&before, deleted) {
                let changes = audit::removed(webhook_fields(before));
                audit::record(tx, audit, webhook_event(before, "deleted", changes)).await?;
            }
            deleted
        })
    }

    async fn list_webhook_deliveries(
        &self,
        organization: OrganizationId,
        endpoint: WebhookId,
        page: Page,
    ) -> Result<Paged<DeliveryRecord>, StoreError> {
        webhooks::deliveries(&mut self.backend.reader()?, organization, endpoint, page).await
    }

    async fn get_webhook_delivery(
        &self,
        organization: OrganizationId,
        endpoint: WebhookId,
        message: MessageId,
    ) -> Result<Option<(DeliveryRecord, Vec<AttemptRecord>, String)>, StoreError> {
        webhooks::delivery(&mut self.backend.reader()?, organization, endpoint, message).await
    }

    async fn redeliver_webhook(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        endpoint: WebhookId,
        message: MessageId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        in_transaction!(self, |tx| {
            let done = webhooks::redeliver(tx, organization, endpoint, message, now).await?;
            if done {
                let changes =
                    audit::created(vec![("message_id", Value::String(message.to_string()))]);
                let event = Event {
                    organization: Some(organization),
                    action: "webhook.redelivery_requested".into(),
                    target_type: "webhook",
                    target_id: endpoint.to_string(),
                    changes,
                };
                audit::record(tx, audit, event).await?;
            }
            done
        })
    }

    async fn claim_webhook_deliveries(
        &self,
        now: Timestamp,
        lease_seconds: i64,
        limit: i64,
        limits: InFlightLimits,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        if !webhooks::any_due(&mut self.backend.reader()?, now, limits).await? {
            return Ok(Vec::new());
        }
        in_transaction!(self, |tx| webhooks::claim(
            tx,
            now,
            lease_seconds,
            limit,
            limits
        )
        .await?)
    }

    async fn release_webhook_deliveries(
        &self,
        deliveries: &[ClaimedDelivery],
    ) -> Result<(), StoreError> {
        if deliveries.is_empty() {
            return Ok(());
        }
        in_transaction!(self, |tx| webhooks::release(tx, deliveries).await?)
    }

    async fn finish_webhook_delivery(
        &self,
        delivery: &ClaimedDelivery,
        attempt: &AttemptRecord,
        next: NextStep,
    ) -> Result<(), StoreError> {
        in_transaction!(self, |tx| webhooks::finish(tx, delivery, attempt, next)
            .await?)
    }

    async fn scan_expiring_credentials(
        &self,
        now: Timestamp,
        limit: i64,
        email: bool,
    ) -> Result<u64, StoreError> {
        if !webhooks::any_expiring(&mut self.backend.reader()?, now).await? {
            return Ok(0);
        }
        in_transaction!(self, |tx| webhooks::scan_expiring(tx, now, limit, email)
            .await?)
    }

    async fn prune_webhook_messages(
        &self,
        before: Timestamp,
        limit: i64,
    ) -> Result<u64, StoreError> {
        in_transaction!(self, |tx| webhooks::prune(tx, before, limit).await?)
    }

    async fn insert_project(
        &self,
        audit: &AuditContext,
        project: NewProject,
    ) -> Result<ProjectRecord, StoreError> {
        in_transaction!(self, |tx| {
            let record = projects::insert(tx, project).await?;
            let changes = audit::created(vec![
                ("name", Value::String(record.name.to_string())),
                ("description", Value::String(record.description.clone())),
            ]);
            audit::record(tx, audit, project_event(&record, "created", changes)).await?;
            record
        })
    }

    async fn list_projects(
        &self,
        organization: OrganizationId,
        only: Option<ProjectId>,
        page: Page,
    ) -> Result<Paged<ProjectRecord>, StoreError> {
        projects::list(&mut self.backend.reader()?, organization, only, page).await
    }

    async fn get_project(
        &self,
        organization: OrganizationId,
        id: ProjectId,
    ) -> Result<Option<ProjectRecord>, StoreError> {
        projects::get(&mut self.backend.reader()?, organization, id).await
    }

    async fn update_project(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        id: ProjectId,
        changes: ProjectChanges,
        at: Timestamp,
    ) -> Result<Option<ProjectRecord>, StoreError> {
        in_transaction!(self, |tx| {
            projects::lock_live(tx, organization, id, true).await?;
            let before = projects::get(tx, organization, id).await?;
            let after = projects::update(tx, organization, id, changes, at).await?;
            if let (Some(before), Some(after)) = (&before, &after) {
                let changes = audit::changed(vec![
                    (
                        "name",
                        Value::String(before.name.to_string()),
                        Value::String(after.name.to_string()),
                    ),
                    (
                        "description",
                        Value::String(before.description.clone()),
                        Value::String(after.description.clone()),
                    ),
                ]);
                if !changes.is_empty() {
                    audit::record(tx, audit, project_event(after, "updated", changes)).await?;
                }
            }
            after
        })
    }

    async fn delete_project(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        id: ProjectId,
        at: Timestamp,
    ) -> Result<ProjectDeletion, StoreError> {
        in_transaction!(self, |tx| {
            let before = projects::get(tx, organization, id).await?;
            let deletion = projects::delete(tx, organization, id, at).await?;
            if let (Some(before), ProjectDeletion::Deleted { revoked_tokens }) =
                (&before, &deletion)
            {
                let mut changes = audit::removed(vec![
                    ("name", Value::String(before.name.to_string())),
                    ("description", Value::String(before.description.clone())),
                ]);
                changes.insert(
                    "revoked_tokens".into(),
                    serde_json::json!({ "after": revoked_tokens
                        .iter()
                        .map(|t| Value::String(t.id.to_string()))
                        .collect::<Vec<_>>() }),
                );
                audit::record(tx, audit, project_event(before, "deleted", changes)).await?;
                for token in revoked_tokens {
                    if let Some(record) = credentials::get(tx, organization, token.id).await? {
                        let event = webhooks::credential_event(&record, Verb::Revoked);
                        webhooks::enqueue(tx, audit, &record, event, Vec::new()).await?;
                    }
                }
            }
            deletion
        })
    }

    async fn insert_instance(
        &self,
        audit: &AuditContext,
        instance: NewInstance,
    ) -> Result<InstanceRecord, StoreError> {
        in_transaction!(self, |tx| {
            let record = instances::insert(tx, instance).await?;
            let changes = audit::created(instance_fields(&record));
            audit::record(tx, audit, instance_event(&record, "created", changes)).await?;
            record
        })
    }

    async fn list_instances(
        &self,
        organization: OrganizationId,
        project: Option<ProjectId>,
        page: Page,
    ) -> Result<Paged<InstanceRecord>, StoreError> {
        instances::list(&mut self.backend.reader()?, organization, project, page).await
    }

    async fn get_instance(
        &self,
        organization: OrganizationId,
        id: InstanceId,
    ) -> Result<Option<InstanceRecord>, StoreError> {
        instances::get(&mut self.backend.reader()?, organization, id).await
    }

    async fn delete_instance(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        id: InstanceId,
    ) -> Result<bool, StoreError> {
        in_transaction!(self, |tx| {
            let before = instances::get(tx, organization, id).await?;
            let deleted = instances::delete(tx, organization, id).await?;
            if let (Some(before), true) = (&before, deleted) {
                let changes = audit::removed(instance_fields(before));
                audit::record(tx, audit, instance_event(before, "deleted", changes)).await?;
            }
            deleted
        })
    }
}

fn credential_event(record: &CredentialRecord, verb: &str, changes: Map<String, Value>) -> Event {
    Event {
        organization: Some(record.organization_id),
        action: format!("{}.{verb}", audit::credential_type(record.id)),
        target_type: audit::credential_type(record.id),
        target_id: record.id.to_string(),
        changes,
    }
}

/// An identity's limits changed.
fn identity_event(
    organization: OrganizationId,
    external_id: &ExternalId,
    verb: &str,
    changes: Map<String, Value>,
) -> Event {
    Event {
        organization: Some(organization),
        action: format!("identity.{verb}"),
        target_type: "identity",
        target_id: external_id.as_str().to_owned(),
        changes,
    }
}

/// Refuses what would hand on calls (a member, a role, a portal link) when a credential with
/// credits, or whose identity has limits, asks: checked here, in the writing transaction, as
/// well as against the verification cache before.
async fn refuse_limited_actor(tx: &mut impl Write, audit: &AuditContext) -> Result<(), StoreError> {
    match &audit.actor {
        Actor::Credential { id, .. } => credits::refuse_if_limited(tx, Some(*id)).await,
        _ => Ok(()),
    }
}

/// Refuses a change of identity limits asked by a credential that is itself limited (see
/// `identities::is_limited`), inside the change's transaction.
async fn refuse_if_held(tx: &mut impl Write, audit: &AuditContext) -> Result<(), StoreError> {
    if let Actor::Credential { id, .. } = &audit.actor
        && identities::is_limited(tx, *id).await?
    {
        return Err(StoreError::Invalid {
            field: "limits",
            message: "a credential held by a rate limit, credits or an identity's limits cannot \
                      change an identity's limits",
        });
    }
    Ok(())
}

fn credential_created(record: &CredentialRecord) -> Event {
    credential_event(
        record,
        "created",
        audit::created(audit::credential_fields(record)),
    )
}

/// What the audit log shows of an endpoint: never its secret (which is not stored anyway),
/// and of its URL only the origin: a path or query may carry a token of the receiver's
/// (`https://hooks.example.com/services/T0/B0/XXXX`), and the audit log is read and
/// exported by more people than manage webhooks.
fn webhook_fields(record: &WebhookRecord) -> Vec<(&'static str, Value)> {
    vec![
        ("url", Value::String(audit_url(&record.url))),
        ("description", Value::String(record.description.clone())),
        (
            "events",
            Value::Array(
                record
                    .events
                    .names()
                    .into_iter()
                    .map(|name| Value::String(name.into()))
                    .collect(),
            ),
        ),
        ("enabled", Value::Bool(record.enabled)),
    ]
}

/// `url`'s origin, then `/…` when it has more than a `/` after it.
fn audit_url(url: &str) -> String {
    let Ok(parsed) = url::Url::parse(url) else {
        return "(not a URL)".to_owned();
    };
    let origin = parsed.origin().ascii_serialization();
    let more = parsed.path() != "/" || parsed.query().is_some() || parsed.fragment().is_some();
    if more {
        format!("{origin}/…")
    } else {
        origin
    }
}

fn webhook_event(record: &WebhookRecord, verb: &str, changes: Map<String, Value>) -> Event {
    Event {
        organization: Some(record.organization_id),
        action: format!("webhook.{verb}"),
        target_type: "webhook",
        target_id: record.id.to_string(),
        changes,
    }
}

/// The policy's fields, before and after.
fn policy_fields(
    before: &OrganizationPolicy,
    after: &OrganizationPolicy,
) -> Vec<(&'static str, Value, Value)> {
    let days = |p: &OrganizationPolicy| Value::from(p.max_lifetime_days);
    vec![
        ("max_lifetime_days", days(before), days(after)),
        (
            "require_expiry",
            Value::Bool(before.require_expiry),
            Value::Bool(after.require_expiry),
        ),
        (
            "leak_action",
            Value::String(before.leak_action.as_str().into()),
            Value::String(after.leak_action.as_str().into()),
        ),
    ]
}

fn organization_event(id: OrganizationId, verb: &str, changes: Map<String, Value>) -> Event {
    Event {
        organization: Some(id),
        action: format!("organization.{verb}"),
        target_type: "organization",
        target_id: id.to_string(),
        changes,
    }
}

/// The event of a membership going from `before` to `after` (`None`: not a member), if it
/// changed: `member.added`, `member.role_changed` or `member.removed`.
fn membership_event(
    organization: OrganizationId,
    user: UserId,
    before: Option<Role>,
    after: Option<Role>,
) -> Option<Event> {
    let role = |role: Role| Value::String(role.as_str().into());
    let (verb, changes) = match (before, after) {
        (None, Some(after)) => ("added", audit::created(vec![("role", role(after))])),
        (Some(before), None) => ("removed", audit::removed(vec![("role", role(before))])),
        (Some(before), Some(after)) if before != after => (
            "role_changed",
            audit::changed(vec![("role", role(before), role(after))]),
        ),
        _ => return None,
    };
    Some(member_event(organization, user, verb, changes))
}

fn member_event(
    organization: OrganizationId,
    user: UserId,
    verb: &str,
    changes: Map<String, Value>,
) -> Event {
    Event {
        organization: Some(organization),
        action: format!("member.{verb}"),
        target_type: "user",
        target_id: user.to_string(),
        changes,
    }
}

fn invitation_event(record: &InvitationRecord, verb: &str, changes: Map<String, Value>) -> Event {
    Event {
        organization: Some(record.organization_id),
        action: format!("invitation.{verb}"),
        target_type: "invitation",
        target_id: record.id.to_string(),
        changes,
    }
}

fn project_event(record: &ProjectRecord, verb: &str, changes: Map<String, Value>) -> Event {
    Event {
        organization: Some(record.organization_id),
        action: format!("project.{verb}"),
        target_type: "project",
        target_id: record.id.to_string(),
        changes,
    }
}

fn instance_fields(record: &InstanceRecord) -> Vec<(&'static str, Value)> {
    vec![
        ("name", Value::String(record.name.to_string())),
        ("project_id", Value::String(record.project_id.to_string())),
        ("region", Value::String(record.region.as_str().into())),
        ("status", Value::String(record.status.as_str().into())),
    ]
}

fn instance_event(record: &InstanceRecord, verb: &str, changes: Map<String, Value>) -> Event {
    Event {
        organization: Some(record.organization_id),
        action: format!("instance.{verb}"),
        target_type: "instance",
        target_id: record.id.to_string(),
        changes,
    }
}
