//! Keyward's storage: the [`Store`] trait and its implementations.
//!
//! The server talks to storage only through [`Store`], so that the embedded SQLite default
//! and a shared PostgreSQL for several nodes behave the same. Every method that changes state
//! commits before it returns: a crash never loses an acknowledged write and never un-revokes a
//! key. Only SHA-256 digests of keys reach storage, never a key itself.

pub mod clock;
mod decode;
mod error;
mod migrate;
pub mod model;
mod postgres;
mod sql;
mod sqlite;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod url;

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use keyward_core::{
    CredentialId, Email, ExternalId, InstanceId, KeyDigest, MessageId, OrganizationId,
    OrganizationRef, ProjectId, RateLimit, Role, ScopeNames, Timestamp, UserId, WebhookId,
};

pub use clock::Clock;
#[cfg(any(test, feature = "testing"))]
pub use clock::ManualClock;
pub use error::StoreError;
pub use model::*;
pub use sql::invitations::{
    INVITATION_EMAILS_PER_ADDRESS_PER_HOUR, INVITATION_RESEND_SECONDS,
    INVITATIONS_PER_ORGANIZATION_PER_DAY,
};
pub use url::{DatabaseUrl, redact};

/// Everything Keyward keeps. Reads and writes of one organization's data always take the
/// organization's id, so that no query can reach another organization's rows. Every write
/// that changes something takes an [`AuditContext`] and records the change in the audit log
/// in the same transaction.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Whether the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Counters of what the store has done since it opened.
    fn stats(&self) -> StoreStats;

    /// Closes every connection, waiting for those in use. Call once, at shutdown.
    async fn close(&self);

    /// Changes other nodes made that this node's verification cache must follow; `None` for
    /// a store that only one node uses.
    fn invalidations(&self) -> Option<tokio::sync::broadcast::Receiver<Invalidation>> {
        None
    }

    /// Whether the database is known to be away, and the generation of what this node reads
    /// from it. Cheap enough for every verification.
    fn state(&self) -> DatabaseState {
        DatabaseState::default()
    }

    /// Creates an organization, makes `owner` its owner (creating the user if asked) and
    /// stores its first credential if one is given, all in one transaction.
    async fn create_organization(
        &self,
        audit: &AuditContext,
        organization: NewOrganization,
        owner: NewOwner,
        first_key: Option<NewCredential>,
    ) -> Result<(), StoreError>;

    /// The organization, with its policy.
    async fn get_organization(
        &self,
        id: OrganizationId,
    ) -> Result<Option<OrganizationRecord>, StoreError>;

    /// Changes the organization's policy for new credentials (merged with the current one
    /// inside the transaction); `None` if it does not exist.
    async fn set_organization_policy(
        &self,
        audit: &AuditContext,
        id: OrganizationId,
        changes: PolicyChanges,
    ) -> Result<Option<OrganizationRecord>, StoreError>;

    /// The person the platform's id names, if any.
    async fn find_user_by_external_id(
        &self,
        external_id: &keyward_core::ExternalId,
    ) -> Result<Option<UserRecord>, StoreError>;

    async fn find_user_by_email(&self, email: &Email) -> Result<Option<UserRecord>, StoreError>;

    /// The organizations a person belongs to, by name.
    async fn memberships_of(&self, user: UserId) -> Result<Vec<MembershipRecord>, StoreError>;

    /// An organization's members, owners first, then by email.
    async fn members(&self, organization: OrganizationId) -> Result<Vec<MemberRecord>, StoreError>;

    /// Fails with `Conflict("member")` if the person already belongs to the organization.
    async fn add_member(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        user: UserId,
        role: Role,
        at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Changes a member's role from `from` to `to`; never leaves the organization without an
    /// owner. `Stale` if the member no longer has the role `from` that the caller checked.
    async fn change_member_role(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        user: UserId,
        from: Role,
        to: Role,
    ) -> Result<MembershipChange, StoreError>;

    /// Removes a member who has the role `from`; never the last owner.
    async fn remove_member(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        user: UserId,
        from: Role,
    ) -> Result<MembershipChange, StoreError>;

    async fn create_session(
        &self,
        audit: &AuditContext,
        session: NewSession,
    ) -> Result<(), StoreError>;

    /// The unexpired session with this token digest, with the person's current membership.
    async fn find_session(
        &self,
        token_digest: &KeyDigest,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError>;

    async fn set_session_organization(
        &self,
        token_digest: &KeyDigest,
        organization: OrganizationId,
    ) -> Result<(), StoreError>;

    async fn delete_session(
        &self,
        audit: &AuditContext,
        token_digest: &KeyDigest,
    ) -> Result<(), StoreError>;

    async fn login_failures(
        &self,
        email: &Email,
        client_ip: &str,
    ) -> Result<Option<LoginFailures>, StoreError>;

    /// Counts a log-in attempt for `email` from `client_ip` as failed (until
    /// `clear_login_failures` says it succeeded), unless the pair is locked out: at least
    /// `max_failures` failures, the last one less than `lockout_seconds` before `at`.
    /// Counting before the password is checked means concurrent attempts cannot all slip
    /// under the limit.
    async fn begin_login_attempt(
        &self,
        email: &Email,
        client_ip: &str,
        at: Timestamp,
        max_failures: u32,
        lockout_seconds: i64,
    ) -> Result<LoginAttempt, StoreError>;

    async fn clear_login_failures(&self, email: &Email, client_ip: &str) -> Result<(), StoreError>;

    /// The credential with this digest, whatever its state: the caller decides.
    async fn find_credential_by_digest(
        &self,
        digest: &KeyDigest,
    ) -> Result<Option<CredentialRecord>, StoreError>;

    async fn insert_credential(
        &self,
        audit: &AuditContext,
        credential: NewCredential,
    ) -> Result<CredentialRecord, StoreError>;

    /// Newest first.
    async fn list_credentials(
        &self,
        organization: OrganizationId,
        filter: &CredentialFilter,
        page: Page,
    ) -> Result<Paged<CredentialRecord>, StoreError>;

    async fn get_credential(
        &self,
        organization: OrganizationId,
        id: CredentialId,
    ) -> Result<Option<CredentialRecord>, StoreError>;

    /// Renames a credential or changes its rate limit; `None` if it does not exist in this
    /// organization.
    async fn update_credential(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        id: CredentialId,
        changes: CredentialChanges,
    ) -> Result<Option<CredentialRecord>, StoreError>;

    /// Revokes the credential if it is not revoked already, and returns it (`None` if it does
    /// not exist in this organization). Revocation is permanent: nothing un-revokes.
    async fn revoke_credential(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        id: CredentialId,
        at: Timestamp,
    ) -> Result<Option<CredentialRecord>, StoreError>;

    /// Rotates the credential `old` to `new` (inserted, with `rotated_from` set): `old`
    /// keeps working until `ends_at`, then is refused as if revoked. `None` if `old` is not
    /// the organization's; `Conflict("rotation")` if it is revoked or already rotating.
    /// Returns the rotated credential and its replacement.
    async fn rotate_credential(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        old: CredentialId,
        new: NewCredential,
        ends_at: Timestamp,
    ) -> Result<Option<(CredentialRecord, CredentialRecord)>, StoreError>;

    /// Marks each usable credential whose digest is in `digests` as exposed at `source` and,
    /// when `revoke` (for `None`: when its organization's `leak_action` is `revoke`), revokes
    /// it; records `<kind>.leaked` and the `credential.leaked` webhook
    /// (and `<kind>.revoked`) in the same transaction. Returns the credentials changed: none
    /// for a report seen before, or for keys that are unknown, revoked or expired.
    async fn report_exposed(
        &self,
        audit: &AuditContext,
        digests: &[KeyDigest],
        source: &str,
        revoke: Option<bool>,
        at: Timestamp,
        email: bool,
    ) -> Result<Vec<CredentialRecord>, StoreError>;

    /// How many of the organization's credentials were reported exposed since `since`.
    async fn count_exposed(
        &self,
        organization: OrganizationId,
        since: Timestamp,
    ) -> Result<u64, StoreError>;

    /// The scope lists of the credentials usable at `now` (neither revoked nor expired), each
    /// with how many credentials hold exactly that list.
    async fn scope_usage(&self, now: Timestamp) -> Result<Vec<(ScopeNames, u64)>, StoreError>;

    /// Records an event that goes with no change of its own (a failed log-in).
    async fn record_audit_event(
        &self,
        audit: &AuditContext,
        organization: Option<OrganizationId>,
        action: &str,
        target_type: &'static str,
        target_id: &str,
    ) -> Result<(), StoreError>;

    /// Writes counted failed authentications as `auth.failed` events, one per count, in one
    /// transaction; returns how many were written.
    async fn record_auth_failures(&self, batch: &[AuthFailureCount]) -> Result<u64, StoreError>;

    /// The organization's audit events that pass `filter`, newest first.
    async fn list_audit_events(
        &self,
        organization: OrganizationId,
        filter: &AuditFilter,
        page: Page,
    ) -> Result<Paged<AuditEventRecord>, StoreError>;

    /// Creates an organization for the platform, with its external id and policy, and
    /// `owner` (a new person or an existing account) as its owner if given.
    async fn provision_organization(
        &self,
        audit: &AuditContext,
        organization: NewOrganization,
        owner: Option<NewOwner>,
    ) -> Result<OrganizationRecord, StoreError>;

    /// The live organization `reference` names; never the installation, which no endpoint
    /// finds.
    async fn find_organization(
        &self,
        reference: &OrganizationRef,
    ) -> Result<Option<OrganizationRecord>, StoreError>;

    /// A page of live organizations that pass `filter`, newest first.
    async fn list_organizations(
        &self,
        filter: &OrganizationFilter,
        page: Page,
    ) -> Result<Paged<OrganizationRecord>, StoreError>;

    /// Renames, re-identifies, changes the policy of, suspends or resumes an organization, in
    /// one transaction with its audit events; `None` if there is no such live organization.
    /// A change of suspension has every node forget the organization's credentials.
    async fn update_organization(
        &self,
        audit: &AuditContext,
        id: OrganizationId,
        changes: OrganizationChanges,
        at: Timestamp,
    ) -> Result<Option<OrganizationChange>, StoreError>;

    /// Deletes an organization: in one transaction, revokes every credential it holds (on
    /// every node), deletes its projects and instances, removes its members and sends the
    /// revocations to its webhooks. `None` if there is no such live organization.
    async fn delete_organization(
        &self,
        audit: &AuditContext,
        id: OrganizationId,
        at: Timestamp,
    ) -> Result<Option<OrganizationChange>, StoreError>;

    /// Stores a portal link for an active organization: in one transaction, finds or makes
    /// the person the platform names, gives them `link.role` in the organization (never
    /// leaving it without an owner) and records the link. Returns the person.
    async fn create_portal_link(
        &self,
        audit: &AuditContext,
        link: NewPortalLink,
    ) -> Result<UserId, StoreError>;

    /// Signs in the person an OpenID provider vouches for, in one transaction: found by
    /// subject, linked by a verified email, or created; with `claimed` (organizations by
    /// external id, with roles), their provider-given memberships become those. `Err` of the
    /// outer result is a failure; of the inner, a refusal.
    async fn sign_in_with_provider(
        &self,
        audit: &AuditContext,
        person: SsoPerson,
        claimed: Option<Vec<(keyward_core::ExternalId, Role)>>,
        at: Timestamp,
    ) -> Result<Result<SsoSignIn, SsoRefusal>, StoreError>;

    /// Puts a message in the outbox.
    async fn enqueue_email(&self, email: NewEmail) -> Result<(), StoreError>;

    /// Takes up to `limit` due messages for `lease_seconds`, skipping those another node has.
    async fn claim_emails(
        &self,
        now: Timestamp,
        lease_seconds: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedEmail>, StoreError>;

    /// Records how sending a claimed message went.
    async fn finish_email(
        &self,
        id: uuid::Uuid,
        outcome: EmailOutcome,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// In one transaction: unless no account has `email` or it asked `max_per_hour` times in
    /// the last hour, records a reset link (the digest of its token, until `expires_at`) and
    /// queues `message` with it.
    async fn request_password_reset(
        &self,
        audit: &AuditContext,
        email: &Email,
        message: NewEmail,
        token_digest: KeyDigest,
        expires_at: Timestamp,
        max_per_hour: i64,
    ) -> Result<ResetRequest, StoreError>;

    /// The email of the account a live reset link is for.
    async fn password_reset_email(
        &self,
        token_digest: &KeyDigest,
        now: Timestamp,
    ) -> Result<Option<Email>, StoreError>;

    /// Uses a reset link once: sets the person's password and ends all their sessions. The
    /// person, if the link was unused and unexpired.
    async fn reset_password(
        &self,
        audit: &AuditContext,
        token_digest: &KeyDigest,
        password_hash: String,
        now: Timestamp,
    ) -> Result<Option<UserId>, StoreError>;

    /// Records an invitation by the audit context's actor, in an active organization, and
    /// queues its message if it has a link. `Conflict("member")` when the address is a
    /// member, `Conflict("invitation")` when an unexpired invitation is open for it.
    async fn create_invitation(
        &self,
        audit: &AuditContext,
        invitation: NewInvitation,
    ) -> Result<InvitationRecord, StoreError>;

    /// The organization's open invitations (expired ones too), newest first.
    async fn list_invitations(
        &self,
        organization: OrganizationId,
    ) -> Result<Vec<InvitationRecord>, StoreError>;

    /// One of the organization's invitations, whatever became of it.
    async fn get_invitation(
        &self,
        organization: OrganizationId,
        id: keyward_core::InvitationId,
    ) -> Result<Option<InvitationRecord>, StoreError>;

    /// Cancels an open invitation (its link stops working); `false` if it was not open.
    async fn cancel_invitation(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        id: keyward_core::InvitationId,
        at: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Gives an open invitation a new expiry and, with `link`, a new link (the one before
    /// stops working) and its message; `None` if it was not open.
    async fn resend_invitation(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        id: keyward_core::InvitationId,
        expires_at: Timestamp,
        link: Option<(NewEmail, KeyDigest)>,
    ) -> Result<Option<InvitationRecord>, StoreError>;

    /// The open, unexpired invitation of a live organization that a link is for.
    async fn invitation_by_link(
        &self,
        token_digest: &KeyDigest,
        now: Timestamp,
    ) -> Result<Option<OpenInvitation>, StoreError>;

    /// The open, unexpired invitations of live organizations for an address, oldest first.
    async fn invitations_for(
        &self,
        email: &Email,
        now: Timestamp,
    ) -> Result<Vec<OpenInvitation>, StoreError>;

    /// Accepts or declines an invitation in one transaction that checks it is open and
    /// unexpired, that it names the person's email, that the organization is live and that
    /// whoever invited may still give the role; accepting may create the person's account.
    /// `Err` of the outer result is a failure; of the inner, a refusal (nothing written).
    async fn answer_invitation(
        &self,
        audit: &AuditContext,
        key: InvitationKey,
        answer: InvitationAnswer,
        at: Timestamp,
    ) -> Result<Result<Joined, InvitationRefusal>, StoreError>;

    /// Redeems a portal link, once: what it opens, if it was unused, unexpired, and its
    /// person still belongs to its live organization.
    async fn redeem_portal_link(
        &self,
        code_digest: &KeyDigest,
        now: Timestamp,
    ) -> Result<Option<PortalRedemption>, StoreError>;

    /// Adds `person` (created first if new) to an active organization with `role`.
    async fn add_organization_member(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        person: NewOwner,
        role: Role,
        at: Timestamp,
    ) -> Result<UserId, StoreError>;

    /// The installation's audit events (admin keys', and organizations' lifecycle) that pass
    /// `filter`, newest first.
    async fn list_installation_events(
        &self,
        filter: &AuditFilter,
        page: Page,
    ) -> Result<Paged<AuditEventRecord>, StoreError>;

    /// Deletes up to `limit` audit events older than `before`; returns how many went.
    async fn prune_audit_events(&self, before: Timestamp, limit: i64) -> Result<u64, StoreError>;

    /// Claims the idempotency key `key` of `caller` for a request with `fingerprint` (the
    /// SHA-256 of its method, path and body) until `lease_until`, in one transaction: of
    /// concurrent claims of one key, on any node, exactly one gets `Claimed`. A claim made
    /// before `expired_before`, or left unanswered past its lease, counts as none.
    async fn claim_idempotency_key(
        &self,
        caller: &str,
        key: &str,
        fingerprint: &[u8; 32],
        lease_until: Timestamp,
        expired_before: Timestamp,
    ) -> Result<IdempotencyClaim, StoreError>;

    /// Keeps the answer of the request that claimed `key`.
    async fn answer_idempotency_key(
        &self,
        caller: &str,
        key: &str,
        answer: &IdempotentAnswer,
    ) -> Result<(), StoreError>;

    /// Gives back an unanswered claim of `key`, so that a retry runs again.
    async fn release_idempotency_key(&self, caller: &str, key: &str) -> Result<(), StoreError>;

    /// Deletes up to `limit` idempotency keys claimed before `before`; returns how many went.
    async fn prune_idempotency_keys(
        &self,
        before: Timestamp,
        limit: i64,
    ) -> Result<u64, StoreError>;

    /// Registers a webhook endpoint (`webhook.created`); `Conflict("webhook limit")` when the
    /// organization has [`MAX_WEBHOOKS`] already.
    async fn insert_webhook(
        &self,
        audit: &AuditContext,
        webhook: NewWebhook,
    ) -> Result<WebhookRecord, StoreError>;

    /// The organization's webhook endpoints, newest first.
    async fn list_webhooks(
        &self,
        organization: OrganizationId,
    ) -> Result<Vec<WebhookRecord>, StoreError>;

    async fn get_webhook(
        &self,
        organization: OrganizationId,
        id: WebhookId,
    ) -> Result<Option<WebhookRecord>, StoreError>;

    /// Changes an endpoint (`webhook.updated`); `None` if it is not the organization's.
    async fn update_webhook(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        id: WebhookId,
        changes: WebhookChanges,
    ) -> Result<Option<WebhookRecord>, StoreError>;

    /// Deletes an endpoint and its deliveries (`webhook.deleted`); `false` if there was none.
    async fn delete_webhook(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        id: WebhookId,
    ) -> Result<bool, StoreError>;

    /// The endpoint's deliveries, newest first.
    async fn list_webhook_deliveries(
        &self,
        organization: OrganizationId,
        endpoint: WebhookId,
        page: Page,
    ) -> Result<Paged<DeliveryRecord>, StoreError>;

    /// One delivery with its attempts (oldest first) and its payload.
    async fn get_webhook_delivery(
        &self,
        organization: OrganizationId,
        endpoint: WebhookId,
        message: MessageId,
    ) -> Result<Option<(DeliveryRecord, Vec<AttemptRecord>, String)>, StoreError>;

    /// Makes a delivery due again now (`webhook.redelivery_requested`); `false` if there is
    /// no such delivery.
    async fn redeliver_webhook(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        endpoint: WebhookId,
        message: MessageId,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Claims up to `limit` due deliveries for `lease_seconds`, so that no other node sends
    /// them meanwhile, leaving alone any endpoint or organization with as many in flight
    /// (claimed, lease not over) as `limits` allow, and taking no more than that from any.
    async fn claim_webhook_deliveries(
        &self,
        now: Timestamp,
        lease_seconds: i64,
        limit: i64,
        limits: InFlightLimits,
    ) -> Result<Vec<ClaimedDelivery>, StoreError>;

    /// Gives back claimed deliveries that were not attempted (the node is stopping): due again
    /// at once, for any node; a delivery whose lease is no longer this claim's is left alone.
    async fn release_webhook_deliveries(
        &self,
        deliveries: &[ClaimedDelivery],
    ) -> Result<(), StoreError>;

    /// Records an attempt of a claimed delivery and what comes next.
    async fn finish_webhook_delivery(
        &self,
        delivery: &ClaimedDelivery,
        attempt: &AttemptRecord,
        next: NextStep,
    ) -> Result<(), StoreError>;

    /// Writes the expiry notices due at `now` (at most `limit`), each once whatever the
    /// nodes, with their webhook messages; returns how many were written.
    async fn scan_expiring_credentials(
        &self,
        now: Timestamp,
        limit: i64,
        email: bool,
    ) -> Result<u64, StoreError>;

    /// Deletes up to `limit` finished webhook messages older than `before`.
    async fn prune_webhook_messages(
        &self,
        before: Timestamp,
        limit: i64,
    ) -> Result<u64, StoreError>;

    /// The credential's last (up to five) client addresses with the time of the last use from
    /// each, most recent first; empty if it is not the organization's.
    async fn credential_addresses(
        &self,
        organization: OrganizationId,
        id: CredentialId,
    ) -> Result<Vec<(String, Timestamp)>, StoreError>;

    /// Records last use in one batch, and the client address of each update. Never moves `last_used_at` backwards. Returns the number
    /// of rows changed.
    async fn record_usage(&self, batch: &[UsageUpdate]) -> Result<u64, StoreError>;

    /// Takes up to `want` of the owner's credits for this node to spend from memory (see
    /// `sql::credits::take`): refills first if a boundary has passed; sends `credits_low` and,
    /// when it gets less than `needed`, `credits_exhausted`, once a period each. `None` when
    /// the credential has no credits.
    async fn take_credits(
        &self,
        owner: CreditOwner,
        want: i64,
        needed: i64,
    ) -> Result<Option<CreditLease>, StoreError>;

    /// Gives back credits a lease did not spend, to its generation and period; `false` when
    /// they no longer count (the credits were set since, or the period is over).
    async fn give_back_credits(
        &self,
        owner: CreditOwner,
        amount: i64,
        generation: i64,
        period: i64,
    ) -> Result<bool, StoreError>;

    /// Gives back what a node's last lease of `bucket` did not allow (if no other take came
    /// since), then takes up to `want` requests of `limit` at `now` (Unix nanoseconds) for the
    /// node to allow from memory: as many as GCRA allows at once, whatever the other nodes
    /// took (see `sql::rates::take`).
    async fn take_rate(
        &self,
        bucket: &RateBucket,
        limit: RateLimit,
        want: u32,
        give_back: Option<RateReturn>,
        now: i64,
    ) -> Result<keyward_core::rate_limit::Take, StoreError>;

    /// Sets an identity's limits (`external_id` in `organization`): the rate limit (its state
    /// carries on) and the credits (started over, in a new generation). Refused when the
    /// actor is a credential held by any limit. Returns them and the digests of the
    /// credentials they apply to, which every node's cache forgets.
    async fn set_identity_limits(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        external_id: &ExternalId,
        limits: IdentityLimits,
    ) -> Result<(IdentityLimitsRecord, Vec<KeyDigest>), StoreError>;

    /// An identity's limits, with what is left of their credits (refilled if due).
    async fn identity_limits(
        &self,
        organization: OrganizationId,
        external_id: &ExternalId,
    ) -> Result<Option<IdentityLimitsRecord>, StoreError>;

    /// Removes an identity's limits: the digests of the credentials they applied to, or
    /// `None` when it had none. Refused as [`Store::set_identity_limits`] is.
    async fn delete_identity_limits(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        external_id: &ExternalId,
    ) -> Result<Option<Vec<KeyDigest>>, StoreError>;

    /// The credential's credits as stored now (refilled if a boundary has passed).
    async fn current_credits(
        &self,
        owner: CreditOwner,
    ) -> Result<Option<StoredCredits>, StoreError>;

    /// Adds counts of verifications to their credentials' hourly rows, in one transaction:
    /// several nodes' counts add up. Counts of credentials that no longer exist are dropped.
    async fn add_usage_counts(&self, batch: &[UsageCount]) -> Result<(), StoreError>;

    /// The hourly counts of one of the organization's credentials with `from <= hour < to`,
    /// oldest first.
    async fn credential_usage(
        &self,
        organization: OrganizationId,
        credential: CredentialId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<UsageRow>, StoreError>;

    /// The organization's hourly counts (all its credentials together) with
    /// `from <= hour < to`, oldest first.
    async fn organization_usage(
        &self,
        organization: OrganizationId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<UsageRow>, StoreError>;

    /// Each of the organization's credentials' counts by outcome with `from <= hour < to`.
    async fn usage_by_credential(
        &self,
        organization: OrganizationId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<CredentialUsageRow>, StoreError>;

    /// Deletes up to `limit` hourly counts of hours before `before`; returns how many went.
    async fn prune_usage(&self, before: Timestamp, limit: i64) -> Result<u64, StoreError>;

    /// Deletes up to `limit` rate-limit buckets whose state is a day or more behind `now`
    /// (Unix nanoseconds): whole, as a missing one reads (keys revoked, limits removed).
    async fn prune_rate_buckets(&self, now: i64, limit: i64) -> Result<u64, StoreError>;

    /// Up to `limit` of the organization's key events after `after`, oldest first, with the
    /// log's bounds. Events are numbered in the order their changes committed, so a reader
    /// that has seen event `n` has seen every earlier one.
    async fn key_events(
        &self,
        organization: OrganizationId,
        after: i64,
        limit: i64,
    ) -> Result<KeyEventPage, StoreError>;

    /// Deletes up to `limit` key events older than `before`, oldest first; returns how many
    /// went. A reader behind them is told so ([`KeyEventPage::pruned_through`]).
    async fn prune_key_events(&self, before: Timestamp, limit: i64) -> Result<u64, StoreError>;

    async fn insert_project(
        &self,
        audit: &AuditContext,
        project: NewProject,
    ) -> Result<ProjectRecord, StoreError>;

    /// Newest first; `only` confines the list to one project.
    async fn list_projects(
        &self,
        organization: OrganizationId,
        only: Option<ProjectId>,
        page: Page,
    ) -> Result<Paged<ProjectRecord>, StoreError>;

    async fn get_project(
        &self,
        organization: OrganizationId,
        id: ProjectId,
    ) -> Result<Option<ProjectRecord>, StoreError>;

    async fn update_project(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        id: ProjectId,
        changes: ProjectChanges,
        at: Timestamp,
    ) -> Result<Option<ProjectRecord>, StoreError>;

    /// Deletes an empty project and revokes all its tokens in the same transaction.
    async fn delete_project(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        id: ProjectId,
        at: Timestamp,
    ) -> Result<ProjectDeletion, StoreError>;

    /// Fails with [`StoreError::NotFound`] if the project is not one of the organization's.
    async fn insert_instance(
        &self,
        audit: &AuditContext,
        instance: NewInstance,
    ) -> Result<InstanceRecord, StoreError>;

    /// Newest first, optionally of one project only.
    async fn list_instances(
        &self,
        organization: OrganizationId,
        project: Option<ProjectId>,
        page: Page,
    ) -> Result<Paged<InstanceRecord>, StoreError>;

    async fn get_instance(
        &self,
        organization: OrganizationId,
        id: InstanceId,
    ) -> Result<Option<InstanceRecord>, StoreError>;

    /// Whether an instance was deleted.
    async fn delete_instance(
        &self,
        audit: &AuditContext,
        organization: OrganizationId,
        id: InstanceId,
    ) -> Result<bool, StoreError>;
}

/// What a node knows of its database: see [`Store::state`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DatabaseState {
    /// Moves on whenever the node may have missed changes (it lost the database and found it
    /// again): what was read in an earlier generation must be read again before it is trusted.
    pub generation: u64,
    /// How long the database has been known to be unreachable, on a monotonic clock;
    /// `None` while it answers. Meanwhile every call fails at once with
    /// [`StoreError::Unavailable`].
    pub down_for: Option<std::time::Duration>,
}

/// What a node's verification cache must forget because another node changed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalidation {
    /// The credential with this digest changed (revoked, rate limit, project deleted).
    Forget(KeyDigest),
    /// Notifications may have been missed: forget everything.
    ForgetAll,
    /// The organization has new key events ([`Store::key_events`]), committed.
    KeyEvents(OrganizationId),
}

/// One credential's latest use, as flushed from memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageUpdate {
    pub credential: CredentialId,
    pub at: Timestamp,
    pub ip: Option<IpAddr>,
}

/// Opens the store a database URL names, creating and migrating it as needed.
///
/// `sqlite://PATH` (or `sqlite:PATH`) is the embedded default; `postgres://…` (or
/// `postgresql://…`) serves several nodes.
pub async fn open(database_url: &str) -> Result<Arc<dyn Store>, StoreError> {
    open_with_clock(database_url, Clock::system()).await
}

/// As [`open`], reading the time from `clock`: the time of every change it records, and how
/// long the database has been away.
pub async fn open_with_clock(
    database_url: &str,
    clock: Clock,
) -> Result<Arc<dyn Store>, StoreError> {
    if database_url.starts_with("sqlite:") {
        Ok(Arc::new(
            sqlite::SqliteBackend::open(database_url, clock).await?,
        ))
    } else if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        Ok(Arc::new(
            postgres::PgBackend::open(database_url, clock).await?,
        ))
    } else {
        let reason = match database_url.split_once(':') {
            Some((scheme, _)) if !scheme.is_empty() => {
                format!("Keyward does not support {scheme:?} databases")
            }
            _ => "it has no scheme such as sqlite:// or postgres://".to_owned(),
        };
        Err(StoreError::unsupported(database_url, reason))
    }
}
