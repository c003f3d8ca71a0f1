//! `keyward` as a client of a running server: keys, tokens, projects, instances, members, the
//! organization's policy, the audit log, webhooks, whoami and scopes (one module per resource
//! in `commands/`).
//!
//! The key comes from `KEYWARD_API_KEY` or a file (`--api-key-file`), never from the command
//! line, where it would land in shell history and process lists. Output is a table for
//! people, or the API's JSON with `--json`. Exit codes: 0 success, 1 the API refused or
//! failed, 2 a usage error.

mod commands;
mod table;

use std::path::PathBuf;

use clap::Args;
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub use commands::{
    AuditCommand, InstancesCommand, KeysCommand, MembersCommand, OrganizationCommand,
    OrganizationsCommand, ProjectsCommand, TokensCommand, WebhooksCommand, audit as commands_audit,
    instances as commands_instances, keys as commands_keys, members as commands_members,
    organization as commands_organization, organizations as commands_organizations,
    projects as commands_projects, scopes as commands_scopes, tokens as commands_tokens,
    webhooks as commands_webhooks, whoami as commands_whoami,
};

/// How to reach the server, shared by every client command.
#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// The Keyward server.
    #[arg(
        long,
        env = "KEYWARD_URL",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL",
        global = true
    )]
    url: String,

    /// Read the API key from this file instead of the KEYWARD_API_KEY environment variable.
    #[arg(long, value_name = "FILE", global = true)]
    api_key_file: Option<PathBuf>,

    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,

    /// Sent as `Idempotency-Key` with a request that creates something: running the same
    /// command again within 24 hours gives the first answer (or, for a key or token, says
    /// where the one created is) instead of creating a second. 1 to 255 printable ASCII
    /// characters.
    #[arg(long, value_name = "KEY", global = true)]
    idempotency_key: Option<String>,

    /// With an admin key: act for this organization (`org_…`, or `ext:<external id>`), sent
    /// as `Keyward-Organization` with every request. The admin key needs
    /// `organizations:act`, and its organization scopes cap what it may do there.
    #[arg(long, env = "KEYWARD_ORGANIZATION", value_name = "ORG", global = true)]
    organization: Option<String>,
}

/// `--idempotency-key` as the server takes it, checked before anything is sent.
fn request_key_checked(key: &str) -> Result<&str, ClientError> {
    let printable = key.bytes().all(|b| (b' '..=b'~').contains(&b));
    if (1..=255).contains(&key.len()) && printable {
        Ok(key)
    } else {
        Err(ClientError::Usage(
            "--idempotency-key must be 1 to 255 printable ASCII characters".into(),
        ))
    }
}

/// Why a client command failed, and its exit code.
#[derive(Debug)]
pub enum ClientError {
    /// The command line or environment is wrong (exit 2).
    Usage(String),
    /// The server refused or failed, or could not be reached (exit 1).
    Api(String),
}

impl ClientError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::Api(_) => 1,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Self::Usage(message) | Self::Api(message) => message,
        }
    }
}

pub type ClientResult = Result<(), ClientError>;

/// An authenticated connection to the API.
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
    pub json: bool,
    idempotency_key: Option<String>,
    organization: Option<String>,
}

impl Client {
    pub fn new(connection: &Connection) -> Result<Self, ClientError> {
        let key = match &connection.api_key_file {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| ClientError::Usage(format!("cannot read {}: {e}", path.display())))?,
            None => std::env::var("KEYWARD_API_KEY").map_err(|_| {
                ClientError::Usage(
                    "no API key: set KEYWARD_API_KEY or pass --api-key-file FILE (a key on the \
                     command line would land in your shell history)"
                        .into(),
                )
            })?,
        };
        let key = key.trim().to_owned();
        if key.is_empty() {
            return Err(ClientError::Usage("the API key is empty".into()));
        }
        Ok(Self {
            http: reqwest::Client::new(),
            base: connection.url.trim_end_matches('/').to_owned(),
            key,
            json: connection.json,
            idempotency_key: connection.idempotency_key.clone(),
            organization: connection
                .organization
                .as_deref()
                .map(str::trim)
                .filter(|org| !org.is_empty())
                .map(str::to_owned),
        })
    }

    /// Sends a request and returns the JSON answer (`Null` for 204), or explains a failure.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ClientError> {
        let idempotency_key = match (&method, &self.idempotency_key) {
            (&Method::POST, Some(key)) => Some(request_key_checked(key)?),
            _ => None,
        };
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        // The installation's own endpoints take no organization.
        let installation = [
            "/v1/organizations",
            "/v1/admin-keys",
            "/v1/admin/",
            "/v1/me",
        ]
        .iter()
        .any(|prefix| path.starts_with(prefix));
        if let Some(organization) = self.organization.as_deref().filter(|_| !installation) {
            request = request.header("keyward-organization", organization);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::Api(format!("cannot reach Keyward at {}: {e}", self.base)))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response
            .text()
            .await
            .map_err(|e| ClientError::Api(format!("the answer could not be read: {e}")))?;
        let body: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_success() {
            Ok(body)
        } else {
            Err(ClientError::Api(explain(
                status,
                &body,
                retry_after.as_deref(),
            )))
        }
    }

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.call(Method::GET, path, None).await
    }

    /// Every item of a list, following `next_cursor` when `all` is set.
    pub async fn list(&self, path: &str, all: bool) -> Result<(Vec<Value>, bool), ClientError> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut page = self.get(path).await?;
        loop {
            if let Some(data) = page["data"].as_array() {
                items.extend(data.iter().cloned());
            }
            match page["next_cursor"].as_str() {
                Some(cursor) if all => {
                    page = self
                        .get(&format!("{path}{separator}cursor={cursor}"))
                        .await?;
                }
                Some(_) => return Ok((items, true)),
                None => return Ok((items, false)),
            }
        }
    }

    /// Prints `value` as JSON, or runs `human` to print it for people.
    pub fn print(&self, value: &Value, human: impl FnOnce(&Value)) {
        if self.json {
            println!("{value}");
        } else {
            human(value);
        }
    }
}

/// One line that says what went wrong and what to do about it.
fn explain(status: StatusCode, body: &Value, retry_after: Option<&str>) -> String {
    let detail = body["detail"].as_str().unwrap_or_default();
    match status.as_u16() {
        401 => format!(
            "the API key was refused ({detail}): check KEYWARD_API_KEY; it may be revoked or expired"
        ),
        403 => match body["scope"].as_str() {
            Some(scope) => format!("the API key lacks the {scope} scope this needs"),
            None => format!("not allowed: {detail}"),
        },
        404 => format!("not found: {detail}"),
        409 => format!("conflict: {detail}"),
        422 => {
            let fields: Vec<String> = body["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    format!(
                        "{}: {}",
                        e["field"].as_str().unwrap_or("?"),
                        e["message"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            if fields.is_empty() {
                format!("invalid request: {detail}")
            } else {
                format!("invalid request: {}", fields.join("; "))
            }
        }
        429 => format!(
            "rate limited: the key's limit is spent; try again in {} s",
            retry_after.unwrap_or("a few")
        ),
        _ => format!("the server answered {status}: {detail}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn failures_are_explained_in_one_line() {
        let forbidden = json!({ "detail": "x", "scope": "instances:write" });
        assert_eq!(
            explain(StatusCode::FORBIDDEN, &forbidden, None),
            "the API key lacks the instances:write scope this needs"
        );
        let invalid = json!({ "detail": "x", "errors": [{ "field": "name", "message": "must not be empty" }] });
        assert_eq!(
            explain(StatusCode::UNPROCESSABLE_ENTITY, &invalid, None),
            "invalid request: name: must not be empty"
        );
        assert!(explain(StatusCode::TOO_MANY_REQUESTS, &json!({}), Some("7")).contains("7 s"));
        assert!(
            explain(
                StatusCode::UNAUTHORIZED,
                &json!({ "detail": "the key is not valid" }),
                None
            )
            .contains("KEYWARD_API_KEY")
        );
        for status in [
            StatusCode::NOT_FOUND,
            StatusCode::CONFLICT,
            StatusCode::BAD_GATEWAY,
        ] {
            assert!(!explain(status, &json!({ "detail": "d" }), None).contains('\n'));
        }
    }
}
