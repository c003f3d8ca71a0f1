//! Schemas for values whose Rust types live in keyward-core (which knows nothing of OpenAPI):
//! the services' views and the API's bodies show them as these. They only describe JSON for
//! the OpenAPI document; no value is ever built from them.
#![allow(dead_code)]

use serde::Serialize;
use utoipa::ToSchema;

/// A permission, `resource:action`: Keyward's own, and those the platform defines. The
/// installation's (`organizations:*`, `admin_keys:*`) only admin keys hold.
#[derive(Serialize, ToSchema)]
#[schema(as = Scope)]
pub enum ScopeName {
    #[serde(rename = "instances:read")]
    InstancesRead,
    #[serde(rename = "instances:write")]
    InstancesWrite,
    #[serde(rename = "projects:read")]
    ProjectsRead,
    #[serde(rename = "projects:write")]
    ProjectsWrite,
    #[serde(rename = "api_keys:read")]
    ApiKeysRead,
    #[serde(rename = "api_keys:write")]
    ApiKeysWrite,
    #[serde(rename = "tokens:read")]
    TokensRead,
    #[serde(rename = "tokens:write")]
    TokensWrite,
    #[serde(rename = "members:read")]
    MembersRead,
    #[serde(rename = "members:write")]
    MembersWrite,
    #[serde(rename = "audit:read")]
    AuditRead,
    #[serde(rename = "keys:verify")]
    KeysVerify,
    #[serde(rename = "organization:write")]
    OrganizationWrite,
    #[serde(rename = "webhooks:read")]
    WebhooksRead,
    #[serde(rename = "webhooks:write")]
    WebhooksWrite,
    #[serde(rename = "organizations:read")]
    OrganizationsRead,
    #[serde(rename = "organizations:write")]
    OrganizationsWrite,
    #[serde(rename = "organizations:act")]
    OrganizationsAct,
    #[serde(rename = "admin_keys:read")]
    AdminKeysRead,
    #[serde(rename = "admin_keys:write")]
    AdminKeysWrite,
    #[serde(rename = "portal:write")]
    PortalWrite,
}

/// A scope a project token may hold.
#[derive(Serialize, ToSchema)]
#[schema(as = ProjectScope)]
pub enum ProjectScopeName {
    #[serde(rename = "instances:read")]
    InstancesRead,
    #[serde(rename = "instances:write")]
    InstancesWrite,
    #[serde(rename = "projects:read")]
    ProjectsRead,
}

/// A new project token: as `CreateCredential`, with project-level scopes only.
#[derive(Serialize, ToSchema)]
#[schema(as = CreateProjectToken)]
pub struct CreateProjectTokenSchema {
    #[schema(example = "Web deploy", min_length = 1, max_length = 100)]
    pub name: String,
    #[schema(min_items = 1)]
    pub scopes: Vec<ProjectScopeName>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<String>,
    pub rate_limit: Option<RateLimitSchema>,
    #[schema(example = json!(["192.0.2.0/24"]), min_items = 1, max_items = 64)]
    pub allowed_cidrs: Option<Vec<String>>,
    #[schema(example = "svc-deploy", min_length = 1, max_length = 255)]
    pub external_id: Option<String>,
    #[schema(value_type = Option<Object>, example = json!({"env": "prod"}))]
    pub meta: Option<serde_json::Value>,
    pub credits: Option<CreditsSchema>,
}

/// Who may hold a scope: `project` scopes project tokens too, `organization` scopes only
/// organization keys (and admin keys acting for an organization), `installation` scopes only
/// admin keys.
#[derive(Serialize, ToSchema)]
#[schema(as = ScopeLevel)]
#[serde(rename_all = "snake_case")]
pub enum ScopeLevelName {
    Project,
    Organization,
    Installation,
}

/// A person's role in an organization.
#[derive(Serialize, ToSchema)]
#[schema(as = Role)]
#[serde(rename_all = "snake_case")]
pub enum RoleName {
    Member,
    Admin,
    Owner,
}

/// What a credential is.
#[derive(Serialize, ToSchema)]
#[schema(as = CredentialKind)]
#[serde(rename_all = "snake_case")]
pub enum KindName {
    ApiKey,
    ProjectToken,
    AdminKey,
}

/// Where a credential stands: only `active` ones are accepted.
#[derive(Serialize, ToSchema)]
#[schema(as = CredentialStatus)]
#[serde(rename_all = "snake_case")]
pub enum StatusName {
    Active,
    Expired,
    Revoked,
}

/// The state of an instance.
#[derive(Serialize, ToSchema)]
#[schema(as = InstanceStatus)]
#[serde(rename_all = "snake_case")]
pub enum InstanceStatusName {
    Provisioning,
    Running,
    Stopped,
}

/// `requests` per `per_seconds`: a burst of up to `requests`, then one request every
/// `per_seconds / requests`.
#[derive(Serialize, ToSchema)]
#[schema(as = RateLimit)]
pub struct RateLimitSchema {
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub requests: u32,
    #[schema(minimum = 1, maximum = 86_400)]
    pub per_seconds: u32,
}

/// Credits to set: the calls it may still make, and optionally a refill to `amount` at the
/// start of each day, or of each month (on `on_day`, 1 to 31; the month's last day when it
/// has fewer), in UTC.
#[derive(Serialize, ToSchema)]
#[schema(as = Credits)]
pub struct CreditsSchema {
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64, example = 1000)]
    pub remaining: i64,
    pub refill: Option<RefillSchema>,
}

/// A refill of credits.
#[derive(Serialize, ToSchema)]
#[schema(as = Refill)]
pub struct RefillSchema {
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64, example = 1000)]
    pub amount: i64,
    #[schema(example = "month")]
    pub every: EverySchema,
    #[schema(minimum = 1, maximum = 31)]
    pub on_day: Option<u8>,
}

/// How often credits are refilled.
#[derive(Serialize, ToSchema)]
#[schema(as = RefillEvery)]
#[serde(rename_all = "lowercase")]
pub enum EverySchema {
    Day,
    Month,
}

/// A change of credits: `{remaining, refill?}` sets them, `{add}` adds to what is left.
#[derive(Serialize, ToSchema)]
#[schema(as = CreditsChange)]
#[serde(untagged)]
pub enum CreditsPatchSchema {
    Set(CreditsSchema),
    Add(CreditsAddSchema),
}

/// Credits to add to what is left.
#[derive(Serialize, ToSchema)]
#[schema(as = CreditsAdd)]
pub struct CreditsAddSchema {
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64, example = 500)]
    pub add: i64,
}
