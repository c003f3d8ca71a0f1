//! The records the store reads and writes.

use keyward_core::webhook::EventTypes;
use keyward_core::{
    CredentialId, CredentialKind, CredentialStatus, CreditSettings, Email, ExternalId, InstanceId,
    InstanceStatus, InvitationId, KeyDigest, Lifetime, MessageId, Meta, Metadata, Name, Networks,
    OrganizationId, ProjectId, RateLimit, Region, Role, ScopeNames, Timestamp, UserId, WebhookId,
};
use uuid::Uuid;

/// Largest page any list returns.
pub const MAX_PAGE_SIZE: u32 = 100;

/// A page request: at most `limit` items whose ids are below `before` (newest first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub limit: u32,
    pub before: Option<Uuid>,
}

impl Page {
    pub fn first(limit: u32) -> Self {
        Self {
            limit: limit.clamp(1, MAX_PAGE_SIZE),
            before: None,
        }
    }

    /// What the store asks for: one more row than the page, to know whether more follow.
    pub(crate) fn fetch_limit(&self) -> i64 {
        i64::from(self.limit.clamp(1, MAX_PAGE_SIZE)) + 1
    }
}

/// One page of results and whether more follow it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub has_more: bool,
}

impl<T> Paged<T> {
    pub(crate) fn from_rows(mut items: Vec<T>, page: Page) -> Self {
        let limit = page.limit.clamp(1, MAX_PAGE_SIZE) as usize;
        let has_more = items.len() > limit;
        items.truncate(limit);
        Self { items, has_more }
    }
}

#[derive(Clone, Debug)]
pub struct NewOrganization {
    pub id: OrganizationId,
    pub name: Name,
    pub created_at: Timestamp,
    /// The platform's own id for it: one live organization per external id.
    pub external_id: Option<ExternalId>,
    pub policy: OrganizationPolicy,
    /// Refuse the name if a live organization has it already (`bootstrap`'s guard for the
    /// person typing it; names are not unique otherwise).
    pub unique_name: bool,
}

/// Who owns a new organization (or joins one).
#[derive(Clone, Debug)]
pub enum NewOwner {
    /// A new user, with the Argon2id PHC string of their password.
    Create {
        id: UserId,
        email: Email,
        password_hash: String,
    },
    /// A new user the platform provisions: no password (they sign in through the platform,
    /// never with a guessable default), perhaps the platform's id and a display name.
    Provision {
        id: UserId,
        email: Email,
        external_id: Option<ExternalId>,
        name: Option<Name>,
    },
    /// A user who already has an account.
    Existing(UserId),
}

#[derive(Clone, Debug)]
pub struct UserRecord {
    pub id: UserId,
    pub email: Email,
    /// `None` for a person the platform provisioned, who has no password.
    pub password_hash: Option<String>,
    /// The platform's id for the person, if it gave one.
    pub external_id: Option<ExternalId>,
    pub created_at: Timestamp,
}

/// Who created a credential, kept for its history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Creator {
    User(UserId),
    Credential(CredentialId),
    /// Someone on the host, with access to the database (`keyward admin-keys create`).
    Host,
}

#[derive(Clone, Debug)]
pub struct NewCredential {
    pub id: CredentialId,
    pub organization_id: OrganizationId,
    /// Set for project tokens, and only for them.
    pub project_id: Option<ProjectId>,
    pub name: Name,
    pub digest: KeyDigest,
    pub hint: String,
    pub scopes: ScopeNames,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub rate_limit: Option<RateLimit>,
    /// The ranges it may be used from; `None` for any address.
    pub allowed_cidrs: Option<Networks>,
    pub created_by: Creator,
    /// The credential it replaces, when a rotation makes it.
    pub rotated_from: Option<CredentialId>,
    /// The platform's external id and meta, if it gave either.
    pub metadata: Metadata,
    /// Its credits, if it has any (`None`: no limit).
    pub credits: Option<CreditSettings>,
}

/// A stored credential: its SHA-256 digest, never the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialRecord {
    pub id: CredentialId,
    /// What caches key verification by; not a secret (SHA-256 of 190 random bits).
    pub digest: KeyDigest,
    pub organization_id: OrganizationId,
    pub project_id: Option<ProjectId>,
    pub name: Name,
    pub hint: String,
    pub scopes: ScopeNames,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    pub rate_limit: Option<RateLimit>,
    /// The ranges it may be used from; `None` for any address.
    pub allowed_cidrs: Option<Networks>,
    /// The person who created it, if a person did (rather than another credential).
    pub created_by_user: Option<UserId>,
    /// Set once it was rotated: until when it keeps working, and what replaced it.
    pub rotation: Option<Rotation>,
    /// The credential this one replaced, if it was made by a rotation.
    pub rotated_from: Option<CredentialId>,
    /// Set once it was reported as exposed in public.
    pub exposure: Option<Exposure>,
    /// The platform's external id and meta, if it gave either.
    pub metadata: Metadata,
    /// Its organization is suspended: refused until it is resumed.
    pub organization_suspended: bool,
    /// Its credits, if it has any: what no node holds in a lease (as of the last refill the
    /// database applied), and the generation leases must match.
    pub credits: Option<StoredCredits>,
    /// The limits of the identity it carries (its external id in its organization), if that
    /// identity has any: they apply as well as its own.
    pub identity_limits: Option<IdentityLimitsState>,
}

/// The limits an identity's credentials share, as verification needs them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityLimitsState {
    /// The limits' id: their credits' owner and their rate limit's bucket.
    pub id: Uuid,
    pub rate_limit: Option<RateLimit>,
    pub credits: Option<StoredCredits>,
}

/// What `PUT /v1/identities/{external_id}/limits` sets: both, each `None` for none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdentityLimits {
    pub rate_limit: Option<RateLimit>,
    pub credits: Option<CreditSettings>,
}

/// An identity's limits as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityLimitsRecord {
    pub id: Uuid,
    pub organization_id: OrganizationId,
    pub external_id: ExternalId,
    pub rate_limit: Option<RateLimit>,
    /// What is left as stored now (refilled if due); nodes' leases hold the rest.
    pub credits: Option<StoredCredits>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A credential's credits as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredCredits {
    pub settings: CreditSettings,
    /// Changes whenever they are set: what leases taken before hold no longer counts.
    pub generation: i64,
    /// The start of the refill period `settings.remaining` belongs to (0 without a refill).
    pub period: i64,
}

impl StoredCredits {
    /// What is left at `now` that no node holds in a lease: refilled if a boundary passed
    /// since the database last did.
    pub fn remaining(&self, now: Timestamp) -> i64 {
        match self.settings.refill_due(self.period, now) {
            Some((_, refill)) => refill.amount,
            None => self.settings.remaining,
        }
    }
}

/// A change of a credential's credits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreditChange {
    /// Sets them (`None`: no limit any more); what nodes hold in leases no longer counts.
    Set(Option<CreditSettings>),
    /// Adds to what is left (refused when it has none).
    Add(i64),
}

/// Credits a node took to spend from memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreditLease {
    /// How many it took (up to what it asked for).
    pub taken: i64,
    /// What is left in the database after it.
    pub remaining: i64,
    /// The generation and refill period they belong to: spent only while both hold, and
    /// returned only to them.
    pub generation: i64,
    pub period_start: i64,
    /// When the period ends (`i64::MAX` without a refill): what is unspent by then is void.
    pub period_end: i64,
}

/// Whose credits a balance holds: a credential's own, or the limits of an identity (an
/// external id of an organization), by their id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CreditOwner {
    Credential(CredentialId),
    Identity(Uuid),
}

impl CreditOwner {
    pub fn as_uuid(&self) -> Uuid {
        match self {
            Self::Credential(id) => id.as_uuid(),
            Self::Identity(id) => *id,
        }
    }
}

impl From<CredentialId> for CreditOwner {
    fn from(id: CredentialId) -> Self {
        Self::Credential(id)
    }
}

/// What a rate limit shared by every node limits: its row in `rate_buckets`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RateBucket(String);

impl RateBucket {
    /// A credential's own limit.
    pub fn credential(id: CredentialId) -> Self {
        Self(format!("credential:{}", id.as_uuid()))
    }

    /// The limit of an identity, by its limits' id.
    pub fn identity(id: Uuid) -> Self {
        Self(format!("identity:{id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Requests a node's lease of a rate limit did not allow, to give back with its next take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateReturn {
    /// The state the lease's take left (its `new_tat`): given back only if the state is still
    /// there, no other take having come since.
    pub taken_to: i64,
    /// The requests not allowed, times the interval they were taken at.
    pub unspent_nanos: i64,
}

/// Where and when a credential was found exposed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exposure {
    pub at: Timestamp,
    /// Where it was found (a URL), or how it was reported.
    pub source: String,
}

/// A rotated credential's overlap: it works until `ends_at`, then is refused as if revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    pub ends_at: Timestamp,
    pub replaced_by: CredentialId,
}

/// A partial update of a credential; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct CredentialChanges {
    pub name: Option<Name>,
    /// `Some(None)` removes the rate limit.
    pub rate_limit: Option<Option<RateLimit>>,
    /// `Some(None)` allows every address again.
    pub allowed_cidrs: Option<Option<Networks>>,
    /// `Some(None)` removes it.
    pub external_id: Option<Option<ExternalId>>,
    /// `Some(None)` removes it.
    pub meta: Option<Option<Meta>>,
    pub credits: Option<CreditChange>,
}

/// A token revoked together with its project.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RevokedToken {
    pub id: CredentialId,
    pub digest: KeyDigest,
}

/// What a store has done since it opened, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Write transactions committed or attempted.
    pub write_transactions: u64,
    /// Look-ups of a credential by digest (verification cache misses).
    pub credential_lookups: u64,
}

impl CredentialRecord {
    pub fn kind(&self) -> CredentialKind {
        self.id.kind()
    }

    /// Until when it works (see [`Lifetime`]).
    pub fn lifetime(&self) -> Lifetime {
        Lifetime::new(
            self.expires_at,
            self.revoked_at,
            self.rotation.map(|rotation| rotation.ends_at),
        )
    }

    pub fn status(&self, now: Timestamp) -> CredentialStatus {
        self.lifetime().status(now)
    }
}

/// Which credentials a list shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialFilter {
    pub kind: CredentialKind,
    pub project: Option<ProjectId>,
    /// Only those with this external id.
    pub external_id: Option<ExternalId>,
}

#[derive(Clone, Debug)]
pub struct NewProject {
    pub id: ProjectId,
    pub organization_id: OrganizationId,
    pub name: Name,
    pub description: String,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectRecord {
    pub id: ProjectId,
    pub organization_id: OrganizationId,
    pub name: Name,
    pub description: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A partial update; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct ProjectChanges {
    pub name: Option<Name>,
    pub description: Option<String>,
}

/// The outcome of deleting a project.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProjectDeletion {
    NotFound,
    /// Projects with instances are not deleted: delete the instances first.
    HasInstances,
    /// Deleted; these tokens were revoked with it.
    Deleted {
        revoked_tokens: Vec<RevokedToken>,
    },
}

#[derive(Clone, Debug)]
pub struct NewInstance {
    pub id: InstanceId,
    pub organization_id: OrganizationId,
    pub project_id: ProjectId,
    pub name: Name,
    pub region: Region,
    pub status: InstanceStatus,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceRecord {
    pub id: InstanceId,
    pub organization_id: OrganizationId,
    pub project_id: ProjectId,
    pub name: Name,
    pub region: Region,
    pub status: InstanceStatus,
    pub created_at: Timestamp,
}

/// An organization a person belongs to, with their role there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipRecord {
    pub organization_id: OrganizationId,
    pub organization_name: Name,
    pub role: Role,
}

/// A person in an organization's member list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRecord {
    pub user_id: UserId,
    pub email: Email,
    pub role: Role,
    pub joined_at: Timestamp,
}

/// The outcome of changing or removing a membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MembershipChange {
    Done,
    NotFound,
    /// Refused: the organization would be left without an owner.
    LastOwner,
    /// Refused: the member's role changed since the caller looked.
    Stale,
}

#[derive(Clone, Debug)]
pub struct NewSession {
    /// SHA-256 of the cookie value.
    pub token_digest: KeyDigest,
    pub user_id: UserId,
    pub organization_id: Option<OrganizationId>,
    pub csrf_token: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// Set for a session a portal link opened: what it is confined to.
    pub portal: Option<PortalConfinement>,
    /// Begun at the OpenID provider, which log-out ends too.
    pub single_sign_on: bool,
    /// Opened by a portal link the credential with this id made: the session ends when it
    /// stops working.
    pub opened_by: Option<Uuid>,
}

/// What a portal session may show: some pages of one organization, with a way back to the
/// platform's console.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortalConfinement {
    /// The page names, space-separated (`api_keys tokens`).
    pub pages: String,
    pub return_url: String,
}

/// A portal link to store: the code's digest and what it opens.
#[derive(Clone, Debug)]
pub struct NewPortalLink {
    pub code_digest: KeyDigest,
    /// The key that makes it: the link and its session last no longer than it works.
    pub credential: CredentialId,
    pub organization: OrganizationId,
    pub person: PortalPerson,
    /// The person's role in the organization from now on.
    pub role: Role,
    pub confinement: PortalConfinement,
    pub session_seconds: i64,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Who a portal link is for, as the platform names them.
#[derive(Clone, Debug)]
pub struct PortalPerson {
    pub external_id: ExternalId,
    pub email: Email,
    pub name: Option<Name>,
    /// Whether the installation vouches for the person (its admin keys): then an account
    /// that has the email but no external id becomes this person, a person of another
    /// organization may be added, and the email given becomes theirs (unless they have a
    /// password of their own). An organization's own key only names new people and its own
    /// members.
    pub vouched: bool,
}

/// A message for the outbox. It holds no secret (see `email_outbox` in the migrations).
#[derive(Clone, Debug)]
pub struct NewEmail {
    /// Its id: the `Message-ID`, and what a link's token is derived from.
    pub id: Uuid,
    pub recipient: Email,
    /// Which message (`password_reset`, `credential_expiring`, …).
    pub template: String,
    /// What the template fills in.
    pub params: serde_json::Value,
    pub created_at: Timestamp,
}

/// A message a node took to send.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimedEmail {
    pub id: Uuid,
    pub recipient: Email,
    pub template: String,
    pub params: serde_json::Value,
    /// Attempts before this one.
    pub attempts: u32,
}

/// How sending a message went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EmailOutcome {
    Sent,
    /// Try again then.
    Retry {
        at: Timestamp,
        error: String,
    },
    /// Tried long enough.
    GiveUp {
        error: String,
    },
}

/// The fate of a password reset request (the page answers the same to all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetRequest {
    Queued,
    NoAccount,
    /// The account asked too often in the last hour.
    TooMany,
}

/// The person an OpenID provider vouches for, from its ID token.
#[derive(Clone, Debug)]
pub struct SsoPerson {
    /// The provider's `sub`: kept as the person's external id.
    pub subject: ExternalId,
    pub email: Email,
    pub email_verified: bool,
    pub name: Option<Name>,
}

/// Why a provider's person cannot sign in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SsoRefusal {
    /// An account has the email, and the provider has not verified it is theirs.
    EmailUnverified,
    /// An account has the email under another external id.
    EmailTaken,
}

/// A person signed in through the provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SsoSignIn {
    pub user_id: UserId,
    pub email: Email,
    /// The organizations the claim named and exist, in its order (`None` without a claim).
    pub claimed: Option<Vec<OrganizationId>>,
}

/// Verifications of one credential in one hour with one outcome, counted in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageCount {
    pub credential: CredentialId,
    /// The hour's first second.
    pub hour: Timestamp,
    /// `allowed`, or the refusal's code.
    pub outcome: &'static str,
    /// The named route rule forward authentication matched, if any.
    pub route: Option<String>,
    /// What to add: negative when verifications counted as allowed turned out refused.
    pub count: i64,
}

/// One stored count: an hour, an outcome and how many.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageRow {
    pub hour: Timestamp,
    pub outcome: String,
    /// The named route rule, if any.
    pub route: Option<String>,
    pub count: u64,
}

/// A credential's counts of one outcome over a period, for an organization's top list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialUsageRow {
    pub credential: CredentialId,
    /// A project token's project.
    pub project: Option<ProjectId>,
    pub name: Name,
    pub outcome: String,
    pub count: u64,
}

/// Where an invitation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvitationStatus {
    /// Waiting for the person (perhaps past its `expires_at`: then it can only be resent).
    Pending,
    Accepted,
    Declined,
    Cancelled,
}

impl InvitationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Declined => "declined",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Who made an invitation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inviter {
    Person {
        id: UserId,
        email: Email,
    },
    Credential(CredentialId),
    /// Keyward itself (the command line on the server).
    Keyward,
}

/// An invitation to join an organization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvitationRecord {
    pub id: InvitationId,
    pub organization_id: OrganizationId,
    pub email: Email,
    pub role: Role,
    pub invited_by: Inviter,
    pub created_at: Timestamp,
    /// Until then it can be accepted; a resend moves it.
    pub expires_at: Timestamp,
    /// Whether a link was emailed (the latest one works; a resend spends the one before).
    pub emailed: bool,
    pub status: InvitationStatus,
}

/// A new invitation; the inviter is the actor of the write's audit context.
#[derive(Clone, Debug)]
pub struct NewInvitation {
    pub id: InvitationId,
    pub organization_id: OrganizationId,
    pub email: Email,
    pub role: Role,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// The message that carries the link, and the digest of the link's token; `None` when
    /// the installation sends no email.
    pub link: Option<(NewEmail, KeyDigest)>,
}

/// An open invitation as its invitee sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenInvitation {
    pub invitation: InvitationRecord,
    pub organization_name: String,
    /// Whether an account has the invitation's email.
    pub account_exists: bool,
}

/// Which invitation an answer is for: by its emailed link, or (for a signed-in person whose
/// email it names) by id.
#[derive(Clone, Debug)]
pub enum InvitationKey {
    Link(KeyDigest),
    Id(InvitationId),
}

/// The person's answer to an invitation.
#[derive(Clone, Debug)]
pub enum InvitationAnswer {
    /// Join: as an existing account (`NewOwner::Existing`), or a new one with the
    /// invitation's email (`NewOwner::Create`).
    Accept(NewOwner),
    Decline(UserId),
}

/// Why an answer to an invitation was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvitationRefusal {
    /// No open, unexpired invitation (never made, answered, cancelled, expired, resent).
    Gone,
    /// The person's email is not the invitation's.
    NotYours,
    /// A new account was asked for, but one has the email already: sign in instead.
    AccountExists,
    /// The one who invited can no longer give that role (left, lowered, revoked).
    InviterMayNot,
    /// The organization was deleted or suspended meanwhile.
    OrganizationGone,
}

/// An accepted invitation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joined {
    pub user_id: UserId,
    pub organization: OrganizationId,
    pub role: Role,
    /// Whether the membership is new (`false`: they had joined meanwhile some other way).
    pub added: bool,
}

/// A portal link, just redeemed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortalRedemption {
    pub organization: OrganizationId,
    /// The id of the key that made the link.
    pub credential: Uuid,
    pub user_id: UserId,
    pub email: Email,
    pub confinement: PortalConfinement,
    pub session_seconds: i64,
}

/// A live session with the person's current membership, as one look-up returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    pub user_id: UserId,
    pub email: Email,
    /// The current organization and the person's role in it, if they still belong to it.
    pub membership: Option<MembershipRecord>,
    pub csrf_token: String,
    pub expires_at: Timestamp,
    /// Set for a session a portal link opened.
    pub portal: Option<PortalConfinement>,
    /// Begun at the OpenID provider.
    pub single_sign_on: bool,
}

/// Failed logins for one email from one address since the last success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginFailures {
    pub failures: u32,
    pub last_failure_at: Timestamp,
}

/// Whether a log-in attempt may check its password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginAttempt {
    /// Counted as a failure until cleared: go ahead and check the password.
    Allowed,
    /// Too many recent failures: refuse without checking.
    Locked { retry_after_seconds: i64 },
}

/// Who made a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// Keyward itself: the command line, a background job.
    System,
    /// A person, in the dashboard.
    User { id: UserId, email: String },
    /// A program, with an API key or a project token (named by its hint, never its secret).
    Credential { id: CredentialId, hint: String },
}

/// Who makes a change, and from where. Every write that changes something takes one and
/// records the change with it in the audit log, in the same transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditContext {
    pub actor: Actor,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    /// The request's id, also sent back in its `X-Request-Id` header.
    pub request_id: Option<String>,
}

impl AuditContext {
    /// A change Keyward makes itself, with nobody asking over HTTP.
    pub const SYSTEM: AuditContext = AuditContext {
        actor: Actor::System,
        client_ip: None,
        user_agent: None,
        request_id: None,
    };
}

/// One event of the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEventRecord {
    pub id: keyward_core::EventId,
    pub at: Timestamp,
    pub organization_id: Option<OrganizationId>,
    /// `api_key.created`, `member.role_changed`, …
    pub action: String,
    pub actor: Actor,
    /// `api_key`, `project`, `user`, …
    pub target_type: String,
    pub target_id: String,
    /// A JSON object: each changed field with its value `before` and `after` (one of them
    /// absent when the thing was created or removed).
    pub changes: String,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

/// Which events a list shows; `None` for any.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub action: Option<String>,
    /// An actor's id (`usr_…`, `key_…`, `tok_…`).
    pub actor: Option<String>,
    /// A target's id.
    pub target: Option<String>,
    /// At or after.
    pub since: Option<Timestamp>,
    /// Before.
    pub until: Option<Timestamp>,
}

/// Failed authentications of one kind, counted in memory between two writes: by the
/// organization and credential when the key was one, and by client address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthFailureCount {
    pub organization: Option<OrganizationId>,
    pub credential: Option<CredentialId>,
    pub client_ip: Option<std::net::IpAddr>,
    /// `unknown`, `malformed`, `revoked`, `expired`, `rate_limited` or `insufficient_scope`.
    pub reason: &'static str,
    pub count: u64,
    pub first_at: Timestamp,
    pub last_at: Timestamp,
}

/// What an organization requires of new credentials. Existing ones are not changed; lists
/// show those that exceed it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OrganizationPolicy {
    /// The longest lifetime of a new credential, in days (1 to 3650); it then needs an expiry.
    pub max_lifetime_days: Option<u32>,
    /// Whether a new credential needs an expiry.
    pub require_expiry: bool,
    /// What a scanning partner's report of an exposed key does.
    pub leak_action: LeakAction,
}

/// What a scanning partner's report of an exposed key does to it. (Anyone's report to the
/// public revocation endpoint always revokes: holding the key proves the exposure.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LeakAction {
    /// Revoke it at once.
    #[default]
    Revoke,
    /// Mark it exposed and tell its owners, who replace it.
    Flag,
}

impl LeakAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Revoke => "revoke",
            Self::Flag => "flag",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "revoke" => Some(Self::Revoke),
            "flag" => Some(Self::Flag),
            _ => None,
        }
    }
}

impl OrganizationPolicy {
    /// Whether a credential made at `created_at` expiring at `expires_at` meets the policy.
    pub fn allows(&self, created_at: Timestamp, expires_at: Option<Timestamp>) -> bool {
        match (expires_at, self.max_lifetime_days) {
            (None, Some(_)) => false,
            (None, None) => !self.require_expiry,
            (Some(_), None) => true,
            (Some(at), Some(days)) => at <= created_at.plus_seconds(i64::from(days) * 86_400),
        }
    }
}

/// An organization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrganizationRecord {
    pub id: OrganizationId,
    pub name: Name,
    pub created_at: Timestamp,
    pub policy: OrganizationPolicy,
    pub external_id: Option<ExternalId>,
    /// While set, every credential of the organization is refused.
    pub suspended_at: Option<Timestamp>,
}

/// Which organizations a list shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrganizationFilter {
    pub external_id: Option<ExternalId>,
    /// Names starting with this, whatever the case.
    pub name_prefix: Option<String>,
    /// `Some(true)`: suspended ones only; `Some(false)`: active ones only.
    pub suspended: Option<bool>,
}

/// A change of an organization by the platform; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrganizationChanges {
    pub name: Option<Name>,
    /// `Some(None)` removes it.
    pub external_id: Option<Option<ExternalId>>,
    pub policy: PolicyChanges,
    /// `Some(true)` suspends, `Some(false)` resumes.
    pub suspended: Option<bool>,
}

/// What a change of an organization did: the record after it, and the digests of its
/// credentials, which every node must read again when the suspension changed or it was
/// deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrganizationChange {
    pub record: OrganizationRecord,
    pub affected: Vec<KeyDigest>,
}

/// A change of policy; `None` leaves a field as it is, `Some(None)` removes the maximum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyChanges {
    pub max_lifetime_days: Option<Option<u32>>,
    pub require_expiry: Option<bool>,
    pub leak_action: Option<LeakAction>,
}

impl PolicyChanges {
    /// `policy` with these changes.
    pub fn apply(&self, policy: OrganizationPolicy) -> OrganizationPolicy {
        OrganizationPolicy {
            max_lifetime_days: self.max_lifetime_days.unwrap_or(policy.max_lifetime_days),
            require_expiry: self.require_expiry.unwrap_or(policy.require_expiry),
            leak_action: self.leak_action.unwrap_or(policy.leak_action),
        }
    }
}

/// At most this many webhook endpoints per organization (checked in the inserting
/// transaction).
pub const MAX_WEBHOOKS: i64 = 20;

/// A webhook endpoint to register.
#[derive(Clone, Debug)]
pub struct NewWebhook {
    pub id: WebhookId,
    pub organization_id: OrganizationId,
    pub url: String,
    pub description: String,
    pub events: EventTypes,
    /// See [`keyward_core::webhook::EndpointSecret::check_value`]; never the secret.
    pub secret_check: String,
    pub created_at: Timestamp,
}

/// A registered webhook endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookRecord {
    pub id: WebhookId,
    pub organization_id: OrganizationId,
    pub url: String,
    pub description: String,
    pub events: EventTypes,
    pub secret_check: String,
    pub enabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A partial update of an endpoint; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct WebhookChanges {
    pub url: Option<String>,
    pub description: Option<String>,
    pub events: Option<EventTypes>,
    pub enabled: Option<bool>,
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for its next attempt (the first, or a retry).
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Every attempt failed; a manual redelivery starts over.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn from_storage(text: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|state| state.as_str() == text)
    }
}

/// One message to one endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub message_id: MessageId,
    pub endpoint_id: WebhookId,
    pub event_type: String,
    pub created_at: Timestamp,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_attempt_at: Option<Timestamp>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub updated_at: Timestamp,
}

/// One try to deliver a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    pub attempted_at: Timestamp,
    /// The HTTP status, if the endpoint answered.
    pub status: Option<u16>,
    pub latency_ms: u64,
    /// Why it failed without a status (refused address, timeout, connection error).
    pub error: Option<String>,
}

/// A delivery a node claimed: everything needed to send it.
#[derive(Clone, Debug)]
pub struct ClaimedDelivery {
    pub message_id: MessageId,
    pub endpoint_id: WebhookId,
    pub organization_id: OrganizationId,
    pub url: String,
    pub secret_check: String,
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: u32,
    /// Until when the claim is this node's.
    pub lease_until: Timestamp,
}

/// How many deliveries may be in flight at once (claimed, lease not over).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InFlightLimits {
    pub per_endpoint: i64,
    pub per_organization: i64,
}

/// What comes after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextStep {
    Delivered,
    RetryAt(Timestamp),
    GiveUp,
    /// This node could not sign it (its signing key differs): due again at this time, for
    /// any node, without counting an attempt, and not in flight meanwhile.
    Release(Timestamp),
}

/// What a creating request answered, kept for 24 hours so that a retry with the same
/// `Idempotency-Key` gets it again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotentAnswer {
    pub status: u16,
    pub location: Option<String>,
    /// The JSON body; `None` when the answer showed a secret, which is never kept.
    pub body: Option<String>,
    /// What the answer showed once (an API key, a signing secret …), if it showed one.
    pub secret: Option<String>,
}

/// What claiming an idempotency key found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// The key is this request's: run it, then keep its answer or give the key back.
    Claimed,
    /// A request with this key and body is running now.
    InFlight,
    /// The key was used for another request (another method, path or body).
    Reused,
    /// This request ran already; this is what it answered.
    Answered(IdempotentAnswer),
}

/// What a change did to a credential, as the key-event log says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyChangeKind {
    /// Revoked, directly or with its organization or project: refused for good.
    Revoked,
    /// Rotated: refused once its rotation's grace ends.
    Rotated,
    /// Its scopes, expiry, limits, networks or details changed.
    Changed,
    /// Its organization was suspended or resumed.
    Suspension,
    /// The limits shared by its identity changed.
    IdentityLimits,
}

impl KeyChangeKind {
    pub const ALL: [Self; 5] = [
        Self::Revoked,
        Self::Rotated,
        Self::Changed,
        Self::Suspension,
        Self::IdentityLimits,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Revoked => "revoked",
            Self::Rotated => "rotated",
            Self::Changed => "changed",
            Self::Suspension => "suspension",
            Self::IdentityLimits => "identity_limits",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == stored)
    }
}

/// A change that verification of a credential must follow, as a write transaction records
/// it: every node's cache forgets the digest, and the key-event log keeps the change.
#[derive(Clone, Copy, Debug)]
pub struct KeyChange<'a> {
    pub organization: OrganizationId,
    pub credential: CredentialId,
    pub digest: &'a KeyDigest,
    pub kind: KeyChangeKind,
}

/// One entry of the key-event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEventRecord {
    /// Increasing in the order the changes committed.
    pub id: i64,
    pub credential_id: CredentialId,
    pub change: KeyChangeKind,
    pub at: Timestamp,
}

/// A page of an organization's key events and the log's bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEventPage {
    pub events: Vec<KeyEventRecord>,
    /// Events up to this id may have been pruned: a reader behind it missed some.
    pub pruned_through: i64,
    /// The last event of any organization (or `pruned_through` when the log is empty): a
    /// reader ahead of it read another log.
    pub latest: i64,
}
