//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations and
//! the request and response types, served at `/v1/openapi.json` and rendered for people at
//! `/docs` (no script, no asset from elsewhere).
//!
//! The error answers every endpoint shares are added from what each operation is: those with
//! a key may answer 400, 401, 429 and 503; those that need a scope 403; those that name a
//! resource 404; those with a body 413, 415 and 422; writes 409.

use std::sync::OnceLock;

use askama::Template;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use keyward_core::{CredentialKind, ScopeCatalog};
use serde_json::{Value, json};
use utoipa::OpenApi;

use utoipa_axum::routes;

use super::ApiRoutes;
use crate::AppState;
use crate::error::{ApiError, Problem};
use crate::field_error::FieldError;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Keyward",
        description = "API keys and project tokens for a platform's REST API. Send a key as \
                       `Authorization: Bearer <key>`; each operation lists the scope it needs.",
    ),
    components(schemas(Problem, FieldError))
)]
pub(super) struct ApiDoc;

/// The document as JSON, with the shared error answers and the security scheme added, for
/// Keyward's own scopes (the checked-in `docs/openapi.json`).
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut document =
            serde_json::to_value(super::declared_operations()).unwrap_or(Value::Null);
        add_security_scheme(&mut document);
        add_idempotency_key(&mut document);
        add_acting_header(&mut document);
        add_error_answers(&mut document);
        document
    })
}

/// The document as this installation serves it: the `Scope` and `ProjectScope` enums list the
/// catalog in force, the platform's scopes included.
pub fn served_document(catalog: &ScopeCatalog) -> Value {
    let mut document = document().clone();
    let names = |kind: CredentialKind| -> Vec<Value> {
        catalog
            .names(&catalog.holdable(kind))
            .map(|name| Value::String(name.to_owned()))
            .collect()
    };
    let schemas = &mut document["components"]["schemas"];
    schemas["Scope"]["enum"] = Value::Array(names(CredentialKind::AdminKey));
    schemas["ProjectScope"]["enum"] = Value::Array(names(CredentialKind::ProjectToken));
    document
}

fn add_security_scheme(document: &mut Value) {
    document["components"]["securitySchemes"]["bearer"] = json!({
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "kwk_… (API key), kwp_… (project token) or kwa_… (admin key)",
        "description": "Scopes are listed per operation; a key may use only the scopes it holds.",
    });
    document["components"]["securitySchemes"]["github_signature"] = json!({
        "type": "apiKey",
        "in": "header",
        "name": "Github-Public-Key-Signature",
        "description": "GitHub's ECDSA signature of the body, with the key named in Github-Public-Key-Identifier.",
    });
}

/// The paths whose `POST` creates something: answered with 201, for a Bearer key.
pub(super) fn creating_paths(document: &Value) -> std::collections::HashSet<String> {
    let creates = |operation: &Value| {
        operation["responses"].get("201").is_some()
            && operation["security"]
                .as_array()
                .is_some_and(|requirements| requirements.iter().any(|r| r.get("bearer").is_some()))
    };
    document["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, item)| item.get("post").is_some_and(creates))
        .map(|(path, _)| path.clone())
        .collect()
}

/// `Idempotency-Key` on every operation that creates (see `crate::idempotency`).
fn add_idempotency_key(document: &mut Value) {
    let creating = creating_paths(document);
    for path in creating {
        let operation = &mut document["paths"][path.as_str()]["post"];
        let parameter = json!({
            "name": "Idempotency-Key",
            "in": "header",
            "required": false,
            "description": "Makes a retry safe: the same key with the same request within 24 hours answers the first answer again (`Idempotent-Replayed: true`) instead of creating again; with another request, 422 `idempotency_key_reused`; while the first still runs, 409 `idempotency_in_flight`. A first answer that showed a secret is not kept: 409 `secret_already_shown`, with its `Location`. 1 to 255 printable ASCII characters.",
            "schema": { "type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$" },
        });
        match operation["parameters"].as_array_mut() {
            Some(parameters) => parameters.push(parameter),
            None => operation["parameters"] = json!([parameter]),
        }
    }
}

/// The paths that are no organization's: an admin key calls them as itself.
const NOT_AN_ORGANIZATIONS: &[&str] = &[
    "/v1/me",
    "/v1/admin-keys",
    "/v1/organizations",
    "/v1/admin/",
    "/v1/forward-auth",
];

/// Whether the operations at `path` (as declared) are an organization's, where an admin key
/// acts for one with `Keyward-Organization`.
pub(crate) fn is_an_organizations(path: &str) -> bool {
    !NOT_AN_ORGANIZATIONS
        .iter()
        .any(|prefix| path.starts_with(prefix))
}

/// `Keyward-Organization` on every organization's operation (see `crate::auth::Principal`).
fn add_acting_header(document: &mut Value) {
    let Some(paths) = document["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        if !is_an_organizations(path) {
            continue;
        }
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for operation in item.values_mut() {
            let authenticated = operation["security"]
                .as_array()
                .is_some_and(|requirements| requirements.iter().any(|r| r.get("bearer").is_some()));
            if !authenticated {
                continue;
            }
            let parameter = json!({
                "name": "Keyward-Organization",
                "in": "header",
                "required": false,
                "description": "For an admin key holding `organizations:act`: the organization it acts for, `org_…` or `ext:<external id>` (required then; 400 `organization_required` without it, 404 `organization_not_found` for none). Its organization-level scopes cap what it may do there. An organization's own key or token sends none (400).",
                "schema": { "type": "string", "minLength": 1, "maxLength": 260 },
            });
            match operation["parameters"].as_array_mut() {
                Some(parameters) => parameters.push(parameter),
                None => operation["parameters"] = json!([parameter]),
            }
            if let Some(responses) = operation["responses"].as_object_mut() {
                responses.entry("404").or_insert_with(|| {
                    problem("No such resource in the key's organization (or project), or no organization named by Keyward-Organization")
                });
            }
        }
    }
}

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/problem+json": {
            "schema": { "$ref": "#/components/schemas/Problem" }
        }}
    })
}

fn add_error_answers(document: &mut Value) {
    let Some(paths) = document["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            let authenticated = operation["security"]
                .as_array()
                .is_some_and(|requirements| requirements.iter().any(|r| r.get("bearer").is_some()));
            let has_body = operation.get("requestBody").is_some();
            let has_query = operation["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
            let names_resource = path.contains('{');
            let writes = matches!(method.as_str(), "post" | "patch" | "delete");
            let Some(responses) = operation["responses"].as_object_mut() else {
                continue;
            };
            let mut add = |status: &str, description: &str| {
                responses
                    .entry(status)
                    .or_insert_with(|| problem(description));
            };
            if authenticated {
                add(
                    "400",
                    "A malformed request: Authorization header, path, query string or body",
                );
                add(
                    "401",
                    "No key, or a malformed, unknown, revoked or expired one (RFC 6750 challenge in WWW-Authenticate)",
                );
                add(
                    "429",
                    "The key's rate limit is spent; see Retry-After and RateLimit",
                );
                add("503", "The database does not answer");
            }
            if authenticated {
                add(
                    "403",
                    "The key lacks the scope this needs (named in `scope`), or its organization (or the one an admin key acts for) is suspended (`organization_suspended`)",
                );
            }
            if names_resource || (writes && has_body) {
                add(
                    "404",
                    "No such resource in the key's organization (or project)",
                );
            }
            if has_body {
                add("413", "The body is over 64 KiB");
                add("415", "The body is not application/json");
                add("422", "Invalid fields, listed in `errors`");
            }
            if has_query {
                add("422", "Invalid `limit` or `cursor`, listed in `errors`");
            }
            if writes {
                add(
                    "409",
                    "A conflict: a name already taken, a project that still has instances, or an Idempotency-Key still in use or whose first answer showed a secret",
                );
            }
        }
    }
}

pub fn router() -> ApiRoutes {
    ApiRoutes::new()
        .routes(routes!(openapi_json))
        .routes(routes!(reference_page))
}

/// The OpenAPI document
///
/// This document: every endpoint, its parameters, bodies, answers and required scope.
#[utoipa::path(
    get, path = "/v1/openapi.json", tag = "Reference",
    responses((status = 200, description = "OpenAPI 3.1", body = Object, content_type = "application/json"))
)]
pub(super) async fn openapi_json(State(state): State<AppState>) -> Response {
    let text = state.openapi.get_or_init(|| {
        serde_json::to_vec(&served_document(&state.config.scopes))
            .unwrap_or_default()
            .into()
    });
    ([(header::CONTENT_TYPE, "application/json")], text.clone()).into_response()
}

struct OperationRow {
    method: String,
    path: String,
    anchor: String,
    summary: String,
    description: String,
    scope: String,
    parameters: Vec<String>,
    request: Option<String>,
    responses: Vec<String>,
}

struct Section {
    tag: String,
    operations: Vec<OperationRow>,
}

struct SchemaRow {
    name: String,
    json: String,
}

#[derive(Template)]
#[template(path = "reference.html")]
struct ReferencePage<'a> {
    product_name: &'a str,
    sections: Vec<Section>,
    schemas: Vec<SchemaRow>,
}

fn schema_name(schema: &Value) -> String {
    if let Some(reference) = schema["$ref"].as_str() {
        return reference.rsplit('/').next().unwrap_or(reference).to_owned();
    }
    match schema["type"].as_str() {
        Some("array") => format!("[{}]", schema_name(&schema["items"])),
        Some(kind) => kind.to_owned(),
        None => "value".to_owned(),
    }
}

/// The API reference
///
/// This document for people: every operation, grouped by tag, with its scope.
#[utoipa::path(
    get, path = "/docs", tag = "Reference",
    responses((status = 200, description = "The reference page", body = String, content_type = "text/html"))
)]
pub(super) async fn reference_page(State(state): State<AppState>) -> Result<Response, ApiError> {
    let html = match state.reference.get() {
        Some(html) => html.clone(),
        None => {
            let html = axum::body::Bytes::from(reference_html(
                &served_document(&state.config.scopes),
                &state.config.branding.product_name,
            )?);
            state.reference.get_or_init(|| html).clone()
        }
    };
    Ok((StatusCode::OK, Html(html)).into_response())
}

/// The reference page of `document`.
fn reference_html(document: &Value, product_name: &str) -> Result<String, ApiError> {
    let mut sections: Vec<Section> = Vec::new();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            let tag = operation["tags"][0].as_str().unwrap_or("Other").to_owned();
            let scope = match operation["security"][0]["bearer"].as_array() {
                None => "none: no key needed".to_owned(),
                Some(scopes) if scopes.is_empty() => "none: any valid key".to_owned(),
                Some(scopes) => scopes
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            let row = OperationRow {
                method: method.to_uppercase(),
                path: path.clone(),
                anchor: format!("{method}-{}", path.replace(['/', '{', '}', '.'], "-")),
                summary: operation["summary"].as_str().unwrap_or_default().to_owned(),
                description: operation["description"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                scope,
                parameters: operation["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        format!(
                            "{} ({}{}): {}",
                            p["name"].as_str().unwrap_or_default(),
                            p["in"].as_str().unwrap_or_default(),
                            if p["required"] == true {
                                ", required"
                            } else {
                                ""
                            },
                            p["description"].as_str().unwrap_or_default()
                        )
                    })
                    .collect(),
                request: operation["requestBody"]["content"]["application/json"]["schema"]
                    .as_object()
                    .map(|_| {
                        schema_name(
                            &operation["requestBody"]["content"]["application/json"]["schema"],
                        )
                    }),
                responses: operation["responses"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(status, answer)| {
                        let body = answer["content"]
                            .as_object()
                            .and_then(|c| c.values().next())
                            .map(|c| format!(" → {}", schema_name(&c["schema"])))
                            .unwrap_or_default();
                        format!(
                            "{status} {}{body}",
                            answer["description"].as_str().unwrap_or_default()
                        )
                    })
                    .collect(),
            };
            match sections.iter_mut().find(|s| s.tag == tag) {
                Some(section) => section.operations.push(row),
                None => sections.push(Section {
                    tag,
                    operations: vec![row],
                }),
            }
        }
    }
    let schemas = document["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, schema)| SchemaRow {
            name: name.clone(),
            json: serde_json::to_string_pretty(schema).unwrap_or_default(),
        })
        .collect();
    let page = ReferencePage {
        product_name,
        sections,
        schemas,
    };
    page.render().map_err(ApiError::internal)
}
