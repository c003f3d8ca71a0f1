//! The authorization matrix: every endpoint of the router × every kind of caller, with the
//! status each must get. An endpoint the router serves without a row here fails the test.
//!
//! Every cell also checks that no 2xx answer shows an id out of the caller's reach, and that
//! a refused request changed nothing in either organization.

use std::collections::BTreeMap;

use keyward_core::{
    Brand, CredentialId, CredentialKind, Email, InstanceId, InstanceStatus, Name, OrganizationId,
    PlaintextKey, ProjectId, Region, Scope, ScopeSet, Timestamp, UserId,
};
use keyward_store::{
    Creator, CredentialFilter, NewCredential, NewInstance, NewOrganization, NewOwner, NewProject,
    Page, Store,
};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Answer, TestApp, builtin_scopes};

/// Which project tokens may call an endpoint.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Level {
    /// No credential needed.
    Public,
    /// Any valid credential.
    AnyCredential,
    /// Project tokens act here, confined to their project.
    Project,
    /// Organization keys only: project tokens get 403.
    Organization,
    /// The installation's (organizations, admin keys): admin keys only, as themselves;
    /// every organization's credential gets 403.
    Installation,
    /// No key: a signature over the body (GitHub's), which no caller here has: 401
    /// `invalid_signature` for all.
    Signed,
}

/// What a caller gets.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Outcome {
    Success(u16),
    NotFound,
    /// 403 naming the endpoint's scope.
    Forbidden,
    /// 401 `invalid_signature`, without a Bearer challenge.
    Unsigned,
    /// 403 naming this scope, whatever the endpoint's.
    Lacks(&'static str),
    /// A problem with this status and code.
    Problem(u16, &'static str),
}

/// One operation the API declares, with this test's recipe for calling it. The method, path,
/// scope and who may call it come from the declaration (the OpenAPI document, which the
/// router is built from); the rest is how this test calls it.
pub struct Row {
    pub method: Method,
    pub path: String,
    /// The scope its declaration needs (its `security`).
    pub scope: Option<Scope>,
    /// Whether its declaration says the key must also hold every scope it grants.
    pub declares_grants: bool,
    pub level: Level,
    /// Scopes this test's body grants; the caller must hold them too.
    grants: &'static [Scope],
    success: u16,
    /// The project `{project_id}` names: `Empty` where success needs a project without
    /// instances.
    project: Which,
    own_token: Outcome,
    other_token: Outcome,
    other_organization: Outcome,
    body: Option<fn(&World) -> Value>,
    /// Send the body (an object of strings) as a form instead of JSON.
    form: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Which {
    Main,
    Empty,
}

use Outcome::{Forbidden, NotFound, Success};

const INSTANCES_READ: &[Scope] = &[Scope::INSTANCES_READ];
const ORGANIZATIONS_READ: &[Scope] = &[Scope::ORGANIZATIONS_READ];
/// What the world's key and tokens hold: a rotation grants it again.
const PROJECT_LEVEL: &[Scope] = &[
    Scope::INSTANCES_READ,
    Scope::INSTANCES_WRITE,
    Scope::PROJECTS_READ,
];
/// What the `member` role may grant: a key adding a member must hold it all.
const MEMBER_CAP: &[Scope] = &[
    Scope::INSTANCES_READ,
    Scope::INSTANCES_WRITE,
    Scope::PROJECTS_READ,
    Scope::API_KEYS_READ,
    Scope::TOKENS_READ,
];

#[test]
fn the_member_cap_is_the_catalogs() {
    assert_eq!(
        MEMBER_CAP.iter().copied().collect::<ScopeSet>(),
        builtin_scopes().role_cap(keyward_core::Role::Member)
    );
}

/// Who may call an operation, and what it needs, as its declaration says: no `security`,
/// anyone; GitHub's signature; any valid key (`bearer` with no scope); or a scope, which
/// project tokens may use only in their project if it is project-level, and never else.
fn declared(operation: &Value) -> (Option<Scope>, Level) {
    let Some(requirements) = operation["security"].as_array() else {
        return (None, Level::Public);
    };
    if requirements
        .iter()
        .any(|r| r.get("github_signature").is_some())
    {
        return (None, Level::Signed);
    }
    let names: Vec<&str> = requirements
        .iter()
        .filter_map(|r| r["bearer"].as_array())
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    match names.as_slice() {
        [] => (None, Level::AnyCredential),
        [name] => {
            let scope = builtin_scopes().lookup(name).expect("a built-in scope");
            let level = match builtin_scopes().info(scope).map(|info| info.level) {
                Some(keyward_core::ScopeLevel::Project) => Level::Project,
                Some(keyward_core::ScopeLevel::Installation) => Level::Installation,
                _ => Level::Organization,
            };
            (Some(scope), level)
        }
        more => panic!("an operation needs one scope, not {more:?}"),
    }
}

/// How this test calls an operation, where the defaults do not do: a body, the success it
/// expects when that is not the first documented one, and what project tokens and the
/// other organization get when that is not what the level says.
#[derive(Default)]
struct Recipe {
    success: Option<u16>,
    grants: &'static [Scope],
    project: Option<Which>,
    other_token: Option<Outcome>,
    other_organization: Option<Outcome>,
    body: Option<fn(&World) -> Value>,
    form: bool,
}

fn recipe(method: &Method, path: &str) -> Recipe {
    let lists = Recipe {
        other_organization: Some(Success(200)),
        ..Recipe::default()
    };
    match (method.as_str(), path) {
        ("POST", "/v1/api-keys") => Recipe {
            grants: INSTANCES_READ,
            other_organization: Some(Success(201)),
            body: Some(|_| json!({ "name": "matrix", "scopes": ["instances:read"] })),
            ..Recipe::default()
        },
        (
            "GET",
            "/v1/api-keys" | "/v1/members" | "/v1/invitations" | "/v1/audit-events"
            | "/v1/webhooks" | "/v1/usage",
        ) => lists,
        ("PUT", "/v1/identities/{external_id}/limits") => Recipe {
            other_organization: Some(Success(200)),
            body: Some(|_| json!({ "credits": { "remaining": 5 } })),
            ..Recipe::default()
        },
        ("PATCH", "/v1/api-keys/{key_id}") => Recipe {
            body: Some(|_| json!({ "rate_limit": { "requests": 100, "per_seconds": 60 } })),
            ..Recipe::default()
        },
        ("GET", "/v1/projects" | "/v1/instances") => Recipe {
            other_token: Some(Success(200)),
            ..lists
        },
        ("POST", "/v1/projects") => Recipe {
            other_organization: Some(Success(201)),
            body: Some(|_| json!({ "name": "Matrix project" })),
            ..Recipe::default()
        },
        ("PATCH", "/v1/projects/{project_id}") => Recipe {
            body: Some(|_| json!({ "name": "Renamed" })),
            ..Recipe::default()
        },
        ("DELETE", "/v1/projects/{project_id}") => Recipe {
            project: Some(Which::Empty),
            ..Recipe::default()
        },
        ("POST", "/v1/projects/{project_id}/tokens") => Recipe {
            grants: INSTANCES_READ,
            body: Some(|_| json!({ "name": "matrix", "scopes": ["instances:read"] })),
            ..Recipe::default()
        },
        ("PATCH", "/v1/projects/{project_id}/tokens/{token_id}") => Recipe {
            body: Some(|_| json!({ "name": "Renamed token" })),
            ..Recipe::default()
        },
        ("POST", "/v1/instances") => Recipe {
            body: Some(
                |world| json!({ "name": "matrix-1", "project_id": world.main_project.to_string(), "region": "eu-west-1" }),
            ),
            ..Recipe::default()
        },
        ("GET", "/v1/keys/events") => lists,
        ("POST", "/v1/keys/verify") => Recipe {
            body: Some(|world| json!({ "key": world.callers[&Caller::OwnProjectToken] })),
            ..lists
        },
        ("POST", "/oauth/introspect") => Recipe {
            body: Some(|world| json!({ "token": world.callers[&Caller::OwnProjectToken] })),
            form: true,
            ..lists
        },
        ("POST", "/v1/api-keys/{key_id}/rotate") => Recipe {
            grants: PROJECT_LEVEL,
            body: Some(|_| json!({ "grace_seconds": 60 })),
            ..Recipe::default()
        },
        ("POST", "/v1/projects/{project_id}/tokens/{token_id}/rotate") => Recipe {
            grants: PROJECT_LEVEL,
            body: Some(|_| json!({ "grace_seconds": 0 })),
            ..Recipe::default()
        },
        ("PATCH", "/v1/organization") => Recipe {
            body: Some(|_| json!({ "require_expiry": false })),
            ..lists
        },
        ("POST", "/v1/invitations/{invitation_id}/resend") => Recipe {
            grants: MEMBER_CAP,
            ..Recipe::default()
        },
        ("POST", "/v1/members") => Recipe {
            other_organization: Some(Success(201)),
            grants: MEMBER_CAP,
            body: Some(|world| json!({ "email": world.spare_email, "role": "member" })),
            ..Recipe::default()
        },
        ("POST", "/v1/portal-sessions") => Recipe {
            other_organization: Some(Success(201)),
            grants: MEMBER_CAP,
            // A new person each time: an organization's key names only new people and its
            // own members.
            body: Some(|_| {
                static PEOPLE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let n = PEOPLE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                json!({
                    "user": { "external_id": format!("matrix-{n}"), "email": format!("portal-{n}@matrix.example") },
                    "role": "member",
                    "return_url": "https://console.example.com/",
                })
            }),
            ..Recipe::default()
        },
        ("PATCH", "/v1/members/{user_id}") => Recipe {
            body: Some(|_| json!({ "role": "member" })),
            ..Recipe::default()
        },
        ("POST", "/v1/credentials/revoke") => Recipe {
            body: Some(|_| json!({ "credentials": [] })),
            ..Recipe::default()
        },
        ("POST", "/v1/admin-keys") => Recipe {
            grants: ORGANIZATIONS_READ,
            body: Some(|_| json!({ "name": "matrix", "scopes": ["organizations:read"] })),
            ..Recipe::default()
        },
        ("POST", "/v1/admin-keys/{admin_key_id}/rotate") => Recipe {
            grants: ORGANIZATIONS_READ,
            body: Some(|_| json!({ "grace_seconds": 0 })),
            ..Recipe::default()
        },
        ("POST", "/v1/organizations") => Recipe {
            body: Some(|_| json!({ "name": "Matrix customer" })),
            ..Recipe::default()
        },
        ("PATCH", "/v1/organizations/{organization_id}") => Recipe {
            body: Some(|_| json!({ "name": "Renamed customer" })),
            ..Recipe::default()
        },
        ("POST", "/v1/organizations/{organization_id}/members") => Recipe {
            body: Some(|world| json!({ "email": world.spare_email, "role": "member" })),
            ..Recipe::default()
        },
        // Open to GitHub alone: without its signature (and here, without its keys), 401.
        ("POST", "/v1/secret-scanning/github") => Recipe {
            body: Some(|_| json!([])),
            ..Recipe::default()
        },
        ("POST", "/v1/webhooks") => Recipe {
            other_organization: Some(Success(201)),
            // A literal public address: no name to resolve in the sandbox.
            body: Some(
                |_| json!({ "url": "https://203.0.114.10/keyward", "events": ["api_key.revoked"] }),
            ),
            ..Recipe::default()
        },
        ("PATCH", "/v1/webhooks/{webhook_id}") => Recipe {
            body: Some(|_| json!({ "description": "matrix" })),
            ..Recipe::default()
        },
        // Any method, for gateways; without the X-Forwarded-* headers that say what to
        // decide, a verified caller gets 400 (what it decides is tested in forward_auth.rs).
        (_, "/v1/forward-auth") => Recipe {
            success: Some(400),
            ..Recipe::default()
        },
        // Envoy's form: the request to decide in the path. No rule allows it here: 403.
        (_, "/v1/forward-auth/{path}") => Recipe {
            success: Some(403),
            ..Recipe::default()
        },
        _ => Recipe::default(),
    }
}

/// The first 2xx status an operation documents.
fn documented_success(operation: &Value) -> u16 {
    operation["responses"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(status, _)| status.parse::<u16>().ok())
        .filter(|status| (200..300).contains(status))
        .min()
        .expect("a documented success")
}

/// Every operation the API declares, each with its recipe.
pub fn rows() -> Vec<Row> {
    let document = keyward_server::api::openapi_document();
    let mut rows = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("operations") {
            let method: Method = method.to_uppercase().parse().expect("a method");
            let (scope, level) = declared(operation);
            let recipe = recipe(&method, path);
            let success = recipe
                .success
                .unwrap_or_else(|| documented_success(operation));
            let (own_token, other_token, other_organization) = match level {
                Level::Public | Level::AnyCredential | Level::Signed => {
                    (Success(success), Success(success), Success(success))
                }
                Level::Organization => (Forbidden, Forbidden, NotFound),
                Level::Installation => (Forbidden, Forbidden, Forbidden),
                Level::Project => (Success(success), NotFound, NotFound),
            };
            rows.push(Row {
                declares_grants: operation.get("x-keyward-grants").is_some(),
                scope,
                level,
                grants: recipe.grants,
                success,
                project: recipe.project.unwrap_or(Which::Main),
                own_token,
                other_token: recipe.other_token.unwrap_or(other_token),
                other_organization: recipe.other_organization.unwrap_or(other_organization),
                body: recipe.body,
                form: recipe.form,
                path: path.clone(),
                method,
            });
        }
    }
    // By path, then in the usual order of methods.
    let rank = |method: &Method| {
        [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ]
        .iter()
        .position(|m| m == method)
    };
    rows.sort_by(|a, b| (&a.path, rank(&a.method)).cmp(&(&b.path, rank(&b.method))));
    rows
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Caller {
    Nobody,
    Malformed,
    WrongChecksum,
    Unknown,
    Revoked,
    Expired,
    ExactScope,
    LackingScope,
    OwnProjectToken,
    OtherProjectToken,
    OtherOrganization,
    /// An admin key holding `organizations:act` and exactly what the endpoint needs, acting
    /// for the first organization.
    AdminActing,
    /// Acting for the first organization with every scope but the endpoint's.
    AdminActingLacking,
    /// Every scope, no `Keyward-Organization`.
    AdminNotActing,
    /// Every scope but `organizations:act`, naming the first organization.
    AdminWithoutAct,
    /// Every scope, acting for a suspended organization (not the first).
    AdminForSuspended,
    /// Every scope, naming an organization that does not exist.
    AdminForUnknown,
}

const CALLERS: [Caller; 17] = [
    Caller::Nobody,
    Caller::Malformed,
    Caller::WrongChecksum,
    Caller::Unknown,
    Caller::Revoked,
    Caller::Expired,
    Caller::ExactScope,
    Caller::LackingScope,
    Caller::OwnProjectToken,
    Caller::OtherProjectToken,
    Caller::OtherOrganization,
    Caller::AdminActing,
    Caller::AdminActingLacking,
    Caller::AdminNotActing,
    Caller::AdminWithoutAct,
    Caller::AdminForSuspended,
    Caller::AdminForUnknown,
];

impl Caller {
    fn is_admin_key(self) -> bool {
        matches!(
            self,
            Self::AdminActing
                | Self::AdminActingLacking
                | Self::AdminNotActing
                | Self::AdminWithoutAct
                | Self::AdminForSuspended
                | Self::AdminForUnknown
        )
    }
}

/// Two organizations with everything an endpoint can name, and a key for every caller.
pub struct World {
    main_project: ProjectId,
    empty_project: ProjectId,
    key: CredentialId,
    token: CredentialId,
    instance: InstanceId,
    callers: BTreeMap<Caller, String>,
    /// The `Keyward-Organization` each admin key caller sends, if any.
    acting: BTreeMap<Caller, String>,
    /// The organization the installation's endpoints name, and the admin key they name.
    customer: OrganizationId,
    admin_key: CredentialId,
    /// Ids each caller must never see in an answer.
    out_of_reach: BTreeMap<Caller, Vec<String>>,
    organizations: [OrganizationId; 2],
    /// A member (not the owner) of the first organization.
    member: UserId,
    /// The email of a person in neither organization.
    spare_email: String,
    /// An open invitation to organization A.
    invitation: keyward_core::InvitationId,
    /// A webhook endpoint of the first organization, and a message sent to it.
    webhook: keyward_core::WebhookId,
    message: keyward_core::MessageId,
}

/// A person who owns an organization of their own: their id and email.
async fn person(store: &dyn Store) -> (UserId, String) {
    let user = UserId::generate();
    let email = format!("{user}@example.com");
    let id = OrganizationId::generate();
    store
        .create_organization(
            &keyward_store::AuditContext::SYSTEM,
            NewOrganization {
                id,
                name: Name::parse(&id.to_string()).unwrap(),
                created_at: Timestamp::now(),
                external_id: None,
                policy: Default::default(),
                unique_name: false,
            },
            NewOwner::Create {
                id: user,
                email: Email::parse(&email).unwrap(),
                password_hash: "$argon2id$unused".into(),
            },
            None,
        )
        .await
        .unwrap();
    (user, email)
}

async fn insert_key(
    store: &dyn Store,
    organization: OrganizationId,
    project: Option<ProjectId>,
    scopes: ScopeSet,
    expires_at: Option<Timestamp>,
    by: Creator,
) -> (CredentialId, String) {
    let kind = if project.is_some() {
        CredentialKind::ProjectToken
    } else {
        CredentialKind::ApiKey
    };
    let key = PlaintextKey::generate(&Brand::default(), kind).unwrap();
    let id = CredentialId::generate(kind);
    store
        .insert_credential(
            &keyward_store::AuditContext::SYSTEM,
            NewCredential {
                id,
                organization_id: organization,
                project_id: project,
                name: Name::parse("matrix").unwrap(),
                digest: key.digest(),
                hint: key.hint(),
                scopes: builtin_scopes().to_names(&scopes),
                created_at: Timestamp::now(),
                expires_at,
                rate_limit: None,
                allowed_cidrs: None,
                created_by: by,
                rotated_from: None,
                metadata: keyward_core::Metadata::default(),
                credits: None,
            },
        )
        .await
        .unwrap();
    (id, key.expose_secret().to_owned())
}

/// An admin key holding `scopes`, made as on the host.
async fn admin_key(store: &dyn Store, scopes: ScopeSet) -> (CredentialId, String) {
    let names: Vec<String> = builtin_scopes().names(&scopes).map(str::to_owned).collect();
    let created = keyward_server::admin_keys::create_admin_key(
        store,
        &Brand::default(),
        builtin_scopes(),
        "matrix",
        &names,
        None,
        Timestamp::now(),
    )
    .await
    .unwrap();
    (created.record.id, created.key.expose_secret().to_owned())
}

/// An organization the platform made (no credential of its own), suspended if asked.
async fn customer(store: &dyn Store, suspended: bool) -> OrganizationId {
    let id = OrganizationId::generate();
    store
        .provision_organization(
            &keyward_store::AuditContext::SYSTEM,
            NewOrganization {
                id,
                name: Name::parse("Customer").unwrap(),
                created_at: Timestamp::now(),
                external_id: None,
                policy: Default::default(),
                unique_name: false,
            },
            None,
        )
        .await
        .unwrap();
    if suspended {
        let changes = keyward_store::OrganizationChanges {
            suspended: Some(true),
            ..Default::default()
        };
        store
            .update_organization(
                &keyward_store::AuditContext::SYSTEM,
                id,
                changes,
                Timestamp::now(),
            )
            .await
            .unwrap();
    }
    id
}

async fn organization(store: &dyn Store) -> (OrganizationId, CredentialId, String) {
    let id = OrganizationId::generate();
    let owner = UserId::generate();
    let key = PlaintextKey::generate(&Brand::default(), CredentialKind::ApiKey).unwrap();
    let key_id = CredentialId::generate(CredentialKind::ApiKey);
    store
        .create_organization(
            &keyward_store::AuditContext::SYSTEM,
            NewOrganization {
                id,
                name: Name::parse(&id.to_string()).unwrap(),
                created_at: Timestamp::now(),
                external_id: None,
                policy: Default::default(),
                unique_name: false,
            },
            NewOwner::Create {
                id: owner,
                email: Email::parse(&format!("{owner}@example.com")).unwrap(),
                password_hash: "$argon2id$unused".into(),
            },
            Some(NewCredential {
                id: key_id,
                organization_id: id,
                project_id: None,
                name: Name::parse("bootstrap").unwrap(),
                digest: key.digest(),
                hint: key.hint(),
                scopes: crate::helpers::all_scope_names(),
                created_at: Timestamp::now(),
                expires_at: None,
                rate_limit: None,
                allowed_cidrs: None,
                created_by: Creator::User(owner),
                rotated_from: None,
                metadata: keyward_core::Metadata::default(),
                credits: None,
            }),
        )
        .await
        .unwrap();
    (id, key_id, key.expose_secret().to_owned())
}

async fn project(store: &dyn Store, organization: OrganizationId, name: &str) -> ProjectId {
    store
        .insert_project(
            &keyward_store::AuditContext::SYSTEM,
            NewProject {
                id: ProjectId::generate(),
                organization_id: organization,
                name: Name::parse(name).unwrap(),
                description: String::new(),
                created_at: Timestamp::now(),
            },
        )
        .await
        .unwrap()
        .id
}

async fn instance(
    store: &dyn Store,
    organization: OrganizationId,
    project: ProjectId,
) -> InstanceId {
    store
        .insert_instance(
            &keyward_store::AuditContext::SYSTEM,
            NewInstance {
                id: InstanceId::generate(),
                organization_id: organization,
                project_id: project,
                name: Name::parse("fixture-1").unwrap(),
                region: Region::parse("eu-west-1").unwrap(),
                status: InstanceStatus::Running,
                created_at: Timestamp::now(),
            },
        )
        .await
        .unwrap()
        .id
}

impl World {
    async fn build(store: &dyn Store, row: &Row) -> Self {
        let project_level = builtin_scopes()
            .parse(&["instances:read", "instances:write", "projects:read"])
            .unwrap();
        let (a, a_admin_id, _) = organization(store).await;
        let (b, b_admin_id, b_admin) = organization(store).await;
        let (member, _) = person(store).await;
        store
            .add_member(
                &keyward_store::AuditContext::SYSTEM,
                a,
                member,
                keyward_core::Role::Member,
                Timestamp::now(),
            )
            .await
            .unwrap();
        let (_, spare_email) = person(store).await;
        let now = Timestamp::now();
        let invitation = store
            .create_invitation(
                &keyward_store::AuditContext::SYSTEM,
                keyward_store::NewInvitation {
                    id: keyward_core::InvitationId::generate(),
                    organization_id: a,
                    email: Email::parse("invited@example.com").unwrap(),
                    role: keyward_core::Role::Member,
                    created_at: now,
                    expires_at: now.plus_seconds(3_600),
                    link: None,
                },
            )
            .await
            .unwrap()
            .id;
        let by = Creator::Credential(a_admin_id);
        let main_project = project(store, a, "Main").await;
        let other_project = project(store, a, "Other").await;
        let empty_project = project(store, a, "Empty").await;
        let b_project = project(store, b, "Theirs").await;
        let main_instance = instance(store, a, main_project).await;
        let other_instance = instance(store, a, other_project).await;
        let b_instance = instance(store, b, b_project).await;
        // An identity of the main organization with limits.
        let limits = keyward_store::IdentityLimits {
            rate_limit: None,
            credits: keyward_core::CreditSettings::new(100, None).ok(),
        };
        store
            .set_identity_limits(&keyward_store::AuditContext::SYSTEM, a, &identity(), limits)
            .await
            .unwrap();
        let webhook = store
            .insert_webhook(
                &keyward_store::AuditContext::SYSTEM,
                keyward_store::NewWebhook {
                    id: keyward_core::WebhookId::generate(),
                    organization_id: a,
                    url: "https://203.0.114.10/keyward".into(),
                    description: String::new(),
                    events: [keyward_core::webhook::EventType::ApiKeyCreated]
                        .into_iter()
                        .collect(),
                    secret_check: String::new(),
                    created_at: Timestamp::now(),
                },
            )
            .await
            .unwrap()
            .id;
        let (key, _) = insert_key(store, a, None, project_level, None, by).await;
        let message = store
            .list_webhook_deliveries(a, webhook, Page::first(1))
            .await
            .unwrap()
            .items[0]
            .message_id;
        let (token, main_token) =
            insert_key(store, a, Some(main_project), project_level, None, by).await;
        let (_, empty_token) =
            insert_key(store, a, Some(empty_project), project_level, None, by).await;
        let (_, other_token) =
            insert_key(store, a, Some(other_project), project_level, None, by).await;
        let (b_token, _) = insert_key(
            store,
            b,
            Some(b_project),
            project_level,
            None,
            Creator::Credential(b_admin_id),
        )
        .await;

        let needed: ScopeSet = row
            .scope
            .into_iter()
            .chain(row.grants.iter().copied())
            .collect();
        let exact_scopes = if needed.is_empty() {
            builtin_scopes().parse(&["audit:read"]).unwrap()
        } else {
            needed
        };
        let mut lacking = builtin_scopes().all();
        if let Some(scope) = row.scope {
            lacking = lacking.difference(&[scope].into_iter().collect());
        }
        let (_, exact) = insert_key(store, a, None, exact_scopes, None, by).await;
        let (_, lacking) = insert_key(store, a, None, lacking, None, by).await;
        let (revoked_id, revoked) =
            insert_key(store, a, None, builtin_scopes().all(), None, by).await;
        store
            .revoke_credential(
                &keyward_store::AuditContext::SYSTEM,
                a,
                revoked_id,
                Timestamp::now(),
            )
            .await
            .unwrap();
        let expired_at = Timestamp::now().plus_seconds(-60);
        let (_, expired) =
            insert_key(store, a, None, builtin_scopes().all(), Some(expired_at), by).await;
        let mut wrong_checksum = exact.clone();
        let last = wrong_checksum.pop().unwrap();
        wrong_checksum.push(if last == '0' { '1' } else { '0' });
        let unknown = PlaintextKey::generate(&Brand::default(), CredentialKind::ApiKey).unwrap();

        let own_token = match row.project {
            Which::Main => main_token,
            Which::Empty => empty_token,
        };
        let own_project = match row.project {
            Which::Main => main_project,
            Which::Empty => empty_project,
        };
        let callers = BTreeMap::from([
            (Caller::Malformed, "not-a-key".to_owned()),
            (Caller::WrongChecksum, wrong_checksum),
            (Caller::Unknown, unknown.expose_secret().to_owned()),
            (Caller::Revoked, revoked),
            (Caller::Expired, expired),
            (Caller::ExactScope, exact),
            (Caller::LackingScope, lacking),
            (Caller::OwnProjectToken, own_token),
            (Caller::OtherProjectToken, other_token),
            (Caller::OtherOrganization, b_admin),
        ]);
        let mut callers = callers;
        let act: ScopeSet = [Scope::ORGANIZATIONS_ACT].into_iter().collect();
        let everything = builtin_scopes().all();
        let admin_exact = if needed.is_empty() {
            act
        } else {
            needed.iter().chain(act.iter()).collect()
        };
        let mut admin_lacking = everything;
        if let Some(scope) = row.scope {
            admin_lacking = admin_lacking.difference(&[scope].into_iter().collect());
        }
        let without_act = everything.difference(&act);
        let suspended = customer(store, true).await;
        let customer = customer(store, false).await;
        let (admin_key_target, _) = admin_key(
            store,
            builtin_scopes().parse(&["organizations:read"]).unwrap(),
        )
        .await;
        let unknown_organization = OrganizationId::generate().to_string();
        let mut acting = BTreeMap::new();
        for (caller, scopes, named) in [
            (Caller::AdminActing, admin_exact, Some(a.to_string())),
            (
                Caller::AdminActingLacking,
                admin_lacking,
                Some(a.to_string()),
            ),
            (Caller::AdminNotActing, everything, None),
            (Caller::AdminWithoutAct, without_act, Some(a.to_string())),
            (
                Caller::AdminForSuspended,
                everything,
                Some(suspended.to_string()),
            ),
            (
                Caller::AdminForUnknown,
                everything,
                Some(unknown_organization),
            ),
        ] {
            let (_, key) = admin_key(store, scopes).await;
            callers.insert(caller, key);
            if let Some(named) = named {
                acting.insert(caller, named);
            }
        }

        let text = |ids: &[&dyn ToString]| ids.iter().map(|id| id.to_string()).collect::<Vec<_>>();
        let organization_b = text(&[&b, &b_project, &b_instance, &b_token, &b_admin_id]);
        let mut outside_own_project = text(&[&other_project, &other_instance, &key]);
        if own_project == main_project {
            outside_own_project.push(empty_project.to_string());
        } else {
            // `token` is the main project's token: the caller's own when that is its project.
            outside_own_project.extend(text(&[&main_project, &main_instance, &token]));
        }
        outside_own_project.extend(organization_b.clone());
        let mut outside_other_project =
            text(&[&main_project, &empty_project, &main_instance, &key, &token]);
        outside_other_project.extend(organization_b.clone());
        let organization_a = text(&[
            &a,
            &main_project,
            &other_project,
            &empty_project,
            &main_instance,
            &other_instance,
            &key,
            &token,
            &a_admin_id,
            &member,
        ]);
        let out_of_reach = BTreeMap::from([
            (Caller::ExactScope, organization_b.clone()),
            (Caller::LackingScope, organization_b.clone()),
            (Caller::OwnProjectToken, outside_own_project),
            (Caller::OtherProjectToken, outside_other_project),
            (Caller::OtherOrganization, organization_a.clone()),
            (Caller::AdminActing, organization_b.clone()),
            (Caller::AdminActingLacking, organization_b.clone()),
            (Caller::AdminForSuspended, {
                let mut both = organization_a;
                both.extend(organization_b);
                both
            }),
        ]);

        World {
            main_project: own_project,
            empty_project,
            key,
            token,
            instance: main_instance,
            callers,
            acting,
            customer,
            admin_key: admin_key_target,
            out_of_reach,
            organizations: [a, b],
            member,
            spare_email,
            invitation,
            webhook,
            message,
        }
    }

    fn path(&self, template: &str, row: &Row) -> String {
        let project = match row.project {
            Which::Main => self.main_project,
            Which::Empty => self.empty_project,
        };
        template
            .replace("{key_id}", &self.key.to_string())
            .replace("{project_id}", &project.to_string())
            .replace("{token_id}", &self.token.to_string())
            .replace("{instance_id}", &self.instance.to_string())
            .replace("{path}", "v1/databases/x")
            .replace("{user_id}", &self.member.to_string())
            .replace("{webhook_id}", &self.webhook.to_string())
            .replace("{invitation_id}", &self.invitation.to_string())
            .replace("{message_id}", &self.message.to_string())
            .replace("{organization_id}", &self.customer.to_string())
            .replace("{admin_key_id}", &self.admin_key.to_string())
            .replace("{external_id}", identity().as_str())
    }
}

/// Everything an organization holds, to see whether a request changed anything.
/// The external id whose limits the main organization has.
fn identity() -> keyward_core::ExternalId {
    keyward_core::ExternalId::parse("customer-matrix").unwrap()
}

async fn fingerprint(store: &dyn Store, organization: OrganizationId) -> String {
    let page = Page::first(100);
    let mut text = String::new();
    for member in store.members(organization).await.unwrap() {
        text.push_str(&format!("{member:?}\n"));
    }
    let limits = store
        .identity_limits(organization, &identity())
        .await
        .unwrap();
    text.push_str(&format!("{limits:?}\n"));
    for webhook in store.list_webhooks(organization).await.unwrap() {
        text.push_str(&format!("{webhook:?}\n"));
    }
    for invitation in store.list_invitations(organization).await.unwrap() {
        text.push_str(&format!("{invitation:?}\n"));
    }
    let projects = store.list_projects(organization, None, page).await.unwrap();
    for project in &projects.items {
        text.push_str(&format!("{project:?}\n"));
        let tokens = CredentialFilter {
            kind: CredentialKind::ProjectToken,
            project: Some(project.id),
            external_id: None,
        };
        for token in store
            .list_credentials(organization, &tokens, page)
            .await
            .unwrap()
            .items
        {
            text.push_str(&format!("{:?} {:?}\n", token.id, token.revoked_at));
        }
    }
    let keys = CredentialFilter {
        kind: CredentialKind::ApiKey,
        project: None,
        external_id: None,
    };
    for key in store
        .list_credentials(organization, &keys, page)
        .await
        .unwrap()
        .items
    {
        text.push_str(&format!("{:?} {:?}\n", key.id, key.revoked_at));
    }
    for instance in store
        .list_instances(organization, None, page)
        .await
        .unwrap()
        .items
    {
        text.push_str(&format!("{instance:?}\n"));
    }
    text
}

/// The installation's own state: its organizations, the members of the one its endpoints
/// name, and its admin keys.
async fn installation_fingerprint(store: &dyn Store, customer: OrganizationId) -> String {
    let page = Page::first(100);
    let mut text = String::new();
    let organizations = store
        .list_organizations(&Default::default(), page)
        .await
        .unwrap();
    for organization in organizations.items {
        text.push_str(&format!("{organization:?}\n"));
    }
    for member in store.members(customer).await.unwrap() {
        text.push_str(&format!("{member:?}\n"));
    }
    let admin_keys = CredentialFilter {
        kind: CredentialKind::AdminKey,
        project: None,
        external_id: None,
    };
    for key in store
        .list_credentials(OrganizationId::INSTALLATION, &admin_keys, page)
        .await
        .unwrap()
        .items
    {
        text.push_str(&format!(
            "{:?} {:?} {:?}\n",
            key.id, key.revoked_at, key.rotation
        ));
    }
    text
}

/// Whether a request by `caller` that got `success` may have changed organization `index`
/// (0: the one the endpoints name, 1: the other, 2: the installation's own state).
fn may_change(caller: Caller, success: bool, index: usize) -> bool {
    success
        && match caller {
            Caller::ExactScope | Caller::LackingScope | Caller::OwnProjectToken => index == 0,
            // Creating in its own organization is fine; touching the other never is.
            Caller::OtherOrganization => index == 1,
            // Acting for the first organization; and the installation's endpoints ignore
            // the header.
            Caller::AdminActing | Caller::AdminActingLacking => index == 0 || index == 2,
            Caller::AdminNotActing | Caller::AdminWithoutAct | Caller::AdminForUnknown => {
                index == 2
            }
            // Its suspended organization is neither of the two.
            Caller::AdminForSuspended => index == 2,
            _ => false,
        }
}

/// What an admin key gets: as the credential being checked (forward authentication) it is
/// unknown; the installation's endpoints take it as itself, with or without a header; an
/// organization's endpoints only while it acts for one it may act for.
fn admin_expected(row: &Row, caller: Caller) -> Outcome {
    if row.path.starts_with("/v1/forward-auth") {
        return Success(401);
    }
    let holds_scope = !matches!(caller, Caller::AdminActingLacking) || row.scope.is_none();
    if row.level == Level::Installation || row.path == "/v1/me" {
        return match caller {
            Caller::AdminActingLacking if row.scope.is_some() => Forbidden,
            Caller::AdminWithoutAct
            | Caller::AdminNotActing
            | Caller::AdminForSuspended
            | Caller::AdminForUnknown
            | Caller::AdminActing
            | Caller::AdminActingLacking => Success(row.success),
            _ => unreachable!(),
        };
    }
    match caller {
        Caller::AdminNotActing => Outcome::Problem(400, "organization_required"),
        Caller::AdminWithoutAct => Outcome::Lacks("organizations:act"),
        Caller::AdminForUnknown => Outcome::Problem(404, "organization_not_found"),
        // Acting for the first organization: as a key of its own with those scopes.
        Caller::AdminActing => Success(row.success),
        Caller::AdminActingLacking if holds_scope => Success(row.success),
        Caller::AdminActingLacking => Forbidden,
        // Acting for a suspended organization that holds nothing the paths name: what
        // another organization's key gets, but nothing is created in it.
        Caller::AdminForSuspended => match row.other_organization {
            Success(201) => Outcome::Problem(403, "organization_suspended"),
            other => other,
        },
        _ => unreachable!(),
    }
}

fn expected(row: &Row, caller: Caller) -> Outcome {
    if row.level == Level::Public {
        return Success(row.success);
    }
    if row.level == Level::Signed {
        return Outcome::Unsigned;
    }
    if caller.is_admin_key() {
        return admin_expected(row, caller);
    }
    match caller {
        Caller::Nobody
        | Caller::Malformed
        | Caller::WrongChecksum
        | Caller::Unknown
        | Caller::Revoked
        | Caller::Expired => Outcome::Success(401),
        // An organization's key holds no installation scope, whatever is stored for it.
        Caller::ExactScope | Caller::LackingScope if row.level == Level::Installation => Forbidden,
        Caller::ExactScope => Success(row.success),
        Caller::LackingScope if row.scope.is_some() => Forbidden,
        Caller::LackingScope => Success(row.success),
        Caller::OwnProjectToken => row.own_token,
        Caller::OtherProjectToken => row.other_token,
        Caller::OtherOrganization => row.other_organization,
        _ => unreachable!("admin keys are above"),
    }
}

fn check(row: &Row, caller: Caller, answer: &Answer, world: &World) -> Result<(), String> {
    let cell = format!("{} {} as {caller:?}", row.method, row.path);
    let outcome = expected(row, caller);
    let status = answer.status.as_u16();
    let fail = |what: String| Err(format!("{cell}: {what}; got {status} {}", answer.body));
    match (outcome, caller) {
        (Success(401), Caller::Nobody) => {
            if status != 401 || answer.body["code"] != "missing_credentials" {
                return fail("expected 401 missing_credentials".into());
            }
            if answer.header("www-authenticate") != Some(r#"Bearer realm="keyward""#) {
                return fail("expected a bare Bearer challenge".into());
            }
        }
        (Success(401), _) => {
            if status != 401 || answer.body["code"] != "invalid_token" {
                return fail("expected 401 invalid_token".into());
            }
            let challenge = answer.header("www-authenticate").unwrap_or_default();
            if !challenge.contains(r#"error="invalid_token""#) {
                return fail(format!(
                    "expected an invalid_token challenge, got {challenge:?}"
                ));
            }
        }
        (Success(code), _) => {
            if status != code {
                return fail(format!("expected {code}"));
            }
        }
        (Outcome::Unsigned, _) => {
            if status != 401 || answer.body["code"] != "invalid_signature" {
                return fail("expected 401 invalid_signature".into());
            }
            if answer.header("www-authenticate").is_some() {
                return fail("expected no Bearer challenge".into());
            }
        }
        (NotFound, _) => {
            if status != 404 || answer.body["code"] != "not_found" {
                return fail("expected 404 not_found".into());
            }
        }
        (Outcome::Problem(code, name), _) => {
            if status != code || answer.body["code"] != name {
                return fail(format!("expected {code} {name}"));
            }
        }
        (Forbidden | Outcome::Lacks(_), _) => {
            let scope = match outcome {
                Outcome::Lacks(scope) => scope,
                _ => row.scope.and_then(|s| s.builtin_name()).unwrap_or_default(),
            };
            if status != 403 || answer.body["scope"] != scope {
                return fail(format!("expected 403 naming {scope}"));
            }
            let challenge = answer.header("www-authenticate").unwrap_or_default();
            if !challenge.contains(&format!(r#"error="insufficient_scope", scope="{scope}""#)) {
                return fail(format!(
                    "expected an insufficient_scope challenge, got {challenge:?}"
                ));
            }
        }
    }
    // The installation's endpoints show every organization to the admin keys they serve.
    if answer.status.is_success() && row.level != Level::Installation {
        let body = answer.body.to_string();
        for id in world.out_of_reach.get(&caller).into_iter().flatten() {
            if body.contains(id.as_str()) {
                return fail(format!("the answer shows {id}, which is out of reach"));
            }
        }
    }
    Ok(())
}

const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

#[tokio::test]
async fn every_endpoint_answers_every_caller_as_the_matrix_says() {
    let app = TestApp::spawn_with(keyward_server::Config {
        portal: std::sync::Arc::new(keyward_server::portal::PortalSettings {
            return_origins: vec!["https://console.example.com".into()],
            ..Default::default()
        }),
        ..keyward_server::Config::default()
    })
    .await;
    let rows = rows();

    // The endpoint list comes from the router: every method a path answers must have a row,
    // and every row must be a route.
    let probe = World::build(app.store.as_ref(), &rows[0]).await;
    let admin = probe.callers[&Caller::ExactScope].clone();
    let mut served = Vec::new();
    for path in keyward_server::api::paths() {
        for method in METHODS {
            let answer = app
                .call(
                    method.clone(),
                    &probe.path(&path, &rows[0]),
                    Some(&admin),
                    None,
                )
                .await;
            if answer.status.as_u16() != 405 {
                served.push((method, path.clone()));
            }
        }
    }
    for (method, path) in &served {
        assert!(
            rows.iter().any(|r| r.method == method && r.path == *path),
            "{method} {path} is served but has no row in the authorization matrix"
        );
    }
    for row in &rows {
        assert!(
            served
                .iter()
                .any(|(m, p)| *m == row.method && *p == row.path),
            "the matrix has a row for {} {}, which the router does not serve",
            row.method,
            row.path
        );
    }

    // What the declarations say a key must also hold is what this test's bodies grant.
    for row in &rows {
        assert_eq!(
            row.declares_grants,
            !row.grants.is_empty(),
            "{} {}: the declaration and the recipe disagree on what it grants",
            row.method,
            row.path
        );
    }

    let mut failures = Vec::new();
    let mut cells = 0;
    for row in &rows {
        let mut world = World::build(app.store.as_ref(), row).await;
        for caller in CALLERS {
            let mut before = Vec::new();
            for organization in world.organizations {
                before.push(fingerprint(app.store.as_ref(), organization).await);
            }
            before.push(installation_fingerprint(app.store.as_ref(), world.customer).await);
            let body = row.body.map(|make| make(&world));
            let key = match caller {
                Caller::Nobody => None,
                other => Some(world.callers[&other].as_str()),
            };
            let path = world.path(&row.path, row);
            let mut request = app.client.request(row.method.clone(), app.url(&path));
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            if let Some(organization) = world.acting.get(&caller) {
                request = request.header("keyward-organization", organization);
            }
            request = match (row.form, body) {
                (true, Some(Value::Object(fields))) => {
                    let form = form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(
                            fields
                                .iter()
                                .map(|(name, value)| (name, value.as_str().unwrap_or_default())),
                        )
                        .finish();
                    request
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(form)
                }
                (_, Some(body)) => request.json(&body),
                (_, None) => request,
            };
            let response = request.send().await.unwrap();
            let answer = if response
                .headers()
                .get("content-type")
                .is_some_and(|kind| kind == "text/event-stream")
            {
                // An event stream stays open: its status and headers are the answer.
                crate::helpers::Answer {
                    status: response.status(),
                    headers: response.headers().clone(),
                    body: Value::Null,
                }
            } else {
                crate::helpers::read(response).await
            };
            cells += 1;
            if let Err(failure) = check(row, caller, &answer, &world) {
                failures.push(failure);
            }
            let mut changed = false;
            let mut after = Vec::new();
            for organization in world.organizations {
                after.push(fingerprint(app.store.as_ref(), organization).await);
            }
            after.push(installation_fingerprint(app.store.as_ref(), world.customer).await);
            for (index, after) in after.into_iter().enumerate() {
                if after != before[index] {
                    changed = true;
                    if !may_change(caller, answer.status.is_success(), index) {
                        failures.push(format!(
                            "{} {} as {caller:?}: changed organization {index}, which it must not \
                             ({})",
                            row.method, row.path, answer.status
                        ));
                    }
                }
            }
            if changed {
                // The world moved on: the next caller starts from a fresh one.
                world = World::build(app.store.as_ref(), row).await;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cells} cells failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(cells, rows.len() * CALLERS.len());
}
