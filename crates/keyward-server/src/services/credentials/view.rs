//! What the services show of a credential: the one response with its key, the view lists
//! and `GET` show, and what a caller may do to it.

use keyward_core::{
    CredentialId, CredentialStatus, ExternalId, Meta, Name, Networks, PlaintextKey, ProjectId,
    RateLimit, Refill, Timestamp,
};
use keyward_store::{CredentialRecord, OrganizationPolicy, StoredCredits};
use serde::Serialize;

use crate::AppState;
use crate::services::caller::Caller;

/// The one response that contains the key itself.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedCredential {
    #[schema(value_type = String, example = "key_01m8dz95x5e4w8stdkzcqeqr73")]
    pub id: CredentialId,
    #[schema(value_type = String, example = "CI/CD Pipeline")]
    pub name: Name,
    /// The secret. Shown here once; Keyward keeps only its SHA-256.
    #[schema(example = "kwk_yNGeILriJDLhr8P3NkdZNttxm0A3sDgP4DLnXc")]
    pub key: String,
    #[schema(example = "kwk_…LnXc")]
    pub hint: String,
    /// Set for project tokens only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "prj_01m8dz968yez2sm2rg58r2payg")]
    pub project_id: Option<ProjectId>,
    #[schema(value_type = Vec<crate::services::schema::ScopeName>)]
    pub scopes: Vec<String>,
    #[schema(value_type = String, format = DateTime, example = "2026-11-27T07:24:06Z")]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    #[schema(value_type = Option<crate::services::schema::RateLimitSchema>)]
    pub rate_limit: Option<RateLimit>,
    /// The address ranges it may be used from; `null` for any address.
    #[schema(value_type = Option<Vec<String>>, example = json!(["192.0.2.0/24", "2001:db8::/32"]))]
    pub allowed_cidrs: Option<Networks>,
    /// The credential it replaces, when a rotation made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub rotated_from: Option<CredentialId>,
    /// The platform's id for whoever uses it (a user, a service account); not unique.
    #[schema(value_type = Option<String>, example = "user_8412")]
    pub external_id: Option<ExternalId>,
    /// What the platform wants back wherever the key is checked; stored and returned as given.
    #[schema(value_type = Option<Object>, example = json!({"plan": "pro"}))]
    pub meta: Option<Meta>,
    /// Its credits; `null` for no limit.
    pub credits: Option<CreditsView>,
}

/// A client address a credential was used from.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AddressView {
    #[schema(example = "192.0.2.7")]
    pub ip: String,
    #[schema(value_type = String, format = DateTime)]
    pub last_used_at: Timestamp,
}

/// Where and when a credential was found exposed in public.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ExposureView {
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// Where it was found (a URL), or how it was reported.
    #[schema(example = "https://github.com/acme/app/blob/main/.env")]
    pub source: String,
}

/// A rotated credential's overlap.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RotationView {
    /// Until when it keeps working; then it is refused as if revoked.
    #[schema(value_type = String, format = DateTime)]
    pub ends_at: Timestamp,
    /// The credential that replaces it.
    #[schema(value_type = String)]
    pub replaced_by: CredentialId,
}

/// A credential as lists and `GET` show it: never the key.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CredentialView {
    #[schema(value_type = String, example = "key_01m8dz95x5e4w8stdkzcqeqr73")]
    pub id: CredentialId,
    #[schema(value_type = String, example = "CI/CD Pipeline")]
    pub name: Name,
    #[schema(example = "kwk_…LnXc")]
    pub hint: String,
    /// Set for project tokens only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "prj_01m8dz968yez2sm2rg58r2payg")]
    pub project_id: Option<ProjectId>,
    /// The scopes it holds, under the configuration in force.
    #[schema(value_type = Vec<crate::services::schema::ScopeName>)]
    pub scopes: Vec<String>,
    /// Scopes it was granted that grant nothing under the configuration in force: no longer
    /// defined, or (for a project token) no longer project-level. They grant again if a later
    /// configuration allows them again.
    #[schema(example = json!([]))]
    pub unknown_scopes: Vec<String>,
    #[schema(value_type = String, format = DateTime, example = "2026-11-27T07:24:06Z")]
    pub created_at: Timestamp,
    /// Written to the database every few seconds; the node that served the use shows it at once.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    #[schema(value_type = crate::services::schema::StatusName)]
    pub status: CredentialStatus,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Timestamp>,
    #[schema(value_type = Option<crate::services::schema::RateLimitSchema>)]
    pub rate_limit: Option<RateLimit>,
    /// The address ranges it may be used from; `null` for any address.
    #[schema(value_type = Option<Vec<String>>, example = json!(["192.0.2.0/24"]))]
    pub allowed_cidrs: Option<Networks>,
    /// Set once it was rotated: `active` until `ends_at` ("rotating"), `revoked` after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationView>,
    /// The credential it replaced, when a rotation made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub rotated_from: Option<CredentialId>,
    /// Set once it was reported as exposed in public (and, by the public revocation endpoint,
    /// revoked): replace it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposure: Option<ExposureView>,
    /// The platform's id for whoever uses it (a user, a service account); not unique.
    #[schema(value_type = Option<String>, example = "user_8412")]
    pub external_id: Option<ExternalId>,
    /// What the platform wants back wherever the key is checked; stored and returned as given.
    #[schema(value_type = Option<Object>, example = json!({"plan": "pro"}))]
    pub meta: Option<Meta>,
    /// Active, but with no expiry or a later one than the organization's policy now allows
    /// (set after it was made): it keeps working; replace it to comply.
    pub exceeds_policy: bool,
    /// In `GET` of one credential: the last (up to five) client addresses it was used from,
    /// most recent first, written with the last-use batches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_addresses: Option<Vec<AddressView>>,
    /// Its credits; `null` for no limit.
    pub credits: Option<CreditsView>,
}

/// A credential's credits: what is left, and its refill.
#[derive(Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct CreditsView {
    /// What no node holds yet: each node serving it holds up to about a second of its
    /// requests in a lease, spent from memory.
    #[schema(example = 1000)]
    pub remaining: i64,
    #[schema(value_type = Option<crate::services::schema::RefillSchema>)]
    pub refill: Option<Refill>,
}

impl CreditsView {
    pub fn new(credits: StoredCredits, now: Timestamp) -> Self {
        Self {
            remaining: credits.remaining(now),
            refill: credits.settings.refill,
        }
    }
}

/// A credential as a caller sees it, with what the caller may do to it.
pub struct CredentialEntry {
    pub view: CredentialView,
    pub allowed: Allowed,
}

/// What a caller may do to a credential now: revoke it unless revoked, rotate it once while
/// active, edit it while active; and of another's credential, a member nothing
/// (members change only what they created).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allowed {
    /// Whether it is the caller's to change at all (a member's own, or anyone's).
    pub change: bool,
    pub revoke: bool,
    pub rotate: bool,
    /// Change its networks, external id and meta (while active).
    pub edit: bool,
}

impl Allowed {
    fn of(caller: &Caller, record: &CredentialRecord, status: CredentialStatus) -> Self {
        let own = caller.may_change_credential_of(record.created_by_user);
        let active = status == CredentialStatus::Active;
        Self {
            change: own,
            revoke: own && status != CredentialStatus::Revoked,
            rotate: own && active && record.rotation.is_none(),
            edit: own && active,
        }
    }
}

impl CredentialEntry {
    pub(super) fn new(
        caller: &Caller,
        record: CredentialRecord,
        state: &AppState,
        now: Timestamp,
        policy: &OrganizationPolicy,
    ) -> Self {
        let allowed = Allowed::of(caller, &record, record.status(now));
        Self {
            view: CredentialView::new(record, state, now, policy),
            allowed,
        }
    }
}

impl CredentialView {
    /// Adds this node's last use that is not yet written to the database.
    pub(super) fn new(
        record: CredentialRecord,
        state: &AppState,
        now: Timestamp,
        policy: &OrganizationPolicy,
    ) -> Self {
        let last_used_at = record.last_used_at.max(state.usage.pending_use(record.id));
        let catalog = &state.config.scopes;
        let granted = catalog.granted(&record.scopes, record.id.kind());
        let (scopes, unknown_scopes) = record
            .scopes
            .iter()
            .map(str::to_owned)
            .partition(|name| catalog.lookup(name).is_some_and(|s| granted.contains(s)));
        let status = record.status(now);
        Self {
            exceeds_policy: status == CredentialStatus::Active
                && !policy.allows(record.created_at, record.expires_at),
            scopes,
            unknown_scopes,
            status: record.status(now),
            id: record.id,
            name: record.name,
            hint: record.hint,
            project_id: record.project_id,
            created_at: record.created_at,
            last_used_at,
            expires_at: record.expires_at,
            revoked_at: record.revoked_at,
            rate_limit: record.rate_limit,
            allowed_cidrs: record.allowed_cidrs,
            rotation: record.rotation.map(|rotation| RotationView {
                ends_at: rotation.ends_at,
                replaced_by: rotation.replaced_by,
            }),
            rotated_from: record.rotated_from,
            external_id: record.metadata.external_id,
            meta: record.metadata.meta,
            exposure: record.exposure.map(|exposure| ExposureView {
                at: exposure.at,
                source: exposure.source,
            }),
            last_addresses: None,
            credits: record.credits.map(|credits| CreditsView::new(credits, now)),
        }
    }
}

pub(super) fn created(record: CredentialRecord, key: &PlaintextKey) -> CreatedCredential {
    CreatedCredential {
        id: record.id,
        name: record.name,
        key: key.expose_secret().to_owned(),
        hint: record.hint,
        project_id: record.project_id,
        scopes: record.scopes.iter().map(str::to_owned).collect(),
        created_at: record.created_at,
        expires_at: record.expires_at,
        rate_limit: record.rate_limit,
        allowed_cidrs: record.allowed_cidrs,
        rotated_from: record.rotated_from,
        external_id: record.metadata.external_id,
        meta: record.metadata.meta,
        credits: record
            .credits
            .map(|credits| CreditsView::new(credits, record.created_at)),
    }
}
