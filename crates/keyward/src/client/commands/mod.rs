//! The client's commands: a module per resource, each with its subcommands and what runs
//! them; what keys and tokens share is here.

mod audit;
mod instances;
mod keys;
mod me;
mod members;
mod organization;
mod organizations;
mod projects;
mod tokens;
mod webhooks;

pub use audit::{AuditCommand, audit};
pub use instances::{InstancesCommand, instances};
pub use keys::{KeysCommand, keys};
pub use me::{scopes, whoami};
pub use members::{MembersCommand, members};
pub use organization::{OrganizationCommand, organization};
pub use organizations::{OrganizationsCommand, organizations};
pub use projects::{ProjectsCommand, projects};
pub use tokens::{TokensCommand, tokens};
pub use webhooks::{WebhooksCommand, webhooks};

use clap::Args;
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::table::{cell, print};
use crate::client::{Client, ClientError, ClientResult};

/// What a new key or token is: its name, scopes and lifetime.
#[derive(Args, Debug)]
pub struct NewCredential {
    /// What the key is for, such as "CI/CD Pipeline".
    #[arg(long)]
    name: String,

    /// A scope to grant (`keyward scopes` lists them); repeat it or separate scopes by commas
    /// (instances:read,projects:read).
    #[arg(
        long = "scope",
        value_delimiter = ',',
        required = true,
        value_name = "SCOPE"
    )]
    scopes: Vec<String>,

    /// When the key stops working, as RFC 3339 (2030-01-31T00:00:00Z).
    #[arg(long, value_name = "TIME", conflicts_with = "expires_in_days")]
    expires_at: Option<String>,

    /// Days from now until the key stops working.
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=3650))]
    expires_in_days: Option<u32>,

    #[command(flatten)]
    networks: AllowCidrs,

    /// The platform's id for whoever uses the key (a user, a service account): 1 to 255
    /// printable ASCII characters, given back wherever the key is checked. Not a secret.
    #[arg(long, value_name = "ID")]
    external_id: Option<String>,

    /// A JSON object of at most 1 KiB given back wherever the key is checked, such as
    /// '{"plan":"pro"}'. Not a secret.
    #[arg(long, value_name = "JSON", value_parser = json_object)]
    meta: Option<Value>,
}

/// `--meta`: a JSON object.
fn json_object(text: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(value) if value.is_object() => Ok(value),
        _ => Err("must be a JSON object, such as '{\"plan\":\"pro\"}'".to_owned()),
    }
}

/// What `update` changes on a key or token: its name, external id or meta.
#[derive(Args, Debug)]
#[group(required = true, multiple = true)]
pub struct CredentialChange {
    /// A new name.
    #[arg(long)]
    name: Option<String>,
    /// A new external id.
    #[arg(long, value_name = "ID", conflicts_with = "clear_external_id")]
    external_id: Option<String>,
    /// Remove the external id.
    #[arg(long)]
    clear_external_id: bool,
    /// New meta, a JSON object such as '{"plan":"pro"}' (it replaces the old one whole).
    #[arg(long, value_name = "JSON", value_parser = json_object, conflicts_with = "clear_meta")]
    meta: Option<Value>,
    /// Remove the meta.
    #[arg(long)]
    clear_meta: bool,
}

impl CredentialChange {
    fn body(&self) -> Value {
        let mut body = serde_json::Map::new();
        if let Some(name) = &self.name {
            body.insert("name".into(), json!(name));
        }
        if let Some(id) = &self.external_id {
            body.insert("external_id".into(), json!(id));
        } else if self.clear_external_id {
            body.insert("external_id".into(), Value::Null);
        }
        if let Some(meta) = &self.meta {
            body.insert("meta".into(), meta.clone());
        } else if self.clear_meta {
            body.insert("meta".into(), Value::Null);
        }
        Value::Object(body)
    }
}

/// Changes a credential's name, external id or meta, and shows it.
pub(super) async fn update(client: &Client, path: &str, change: &CredentialChange) -> ClientResult {
    let updated = client
        .call(Method::PATCH, path, Some(change.body()))
        .await?;
    client.print(&updated, |item| {
        print(&CREDENTIAL_COLUMNS, &[credential_row(item)]);
    });
    Ok(())
}

/// A list's path, with only the credentials of `external_id` if given.
pub(super) fn list_path(base: &str, external_id: Option<&str>) -> String {
    match external_id {
        None => base.to_owned(),
        Some(id) => {
            let query = form_urlencoded::Serializer::new(String::new())
                .append_pair("external_id", id)
                .finish();
            format!("{base}?{query}")
        }
    }
}

/// The address ranges a credential may be used from.
#[derive(Args, Debug)]
pub struct AllowCidrs {
    /// An IPv4 or IPv6 range (192.0.2.0/24, 2001:db8::/32) or address the key may be used
    /// from; repeat it or separate ranges by commas. Requests from elsewhere get 403.
    #[arg(long = "allow-cidr", value_delimiter = ',', value_name = "RANGE")]
    ranges: Vec<String>,
}

impl AllowCidrs {
    /// The `allowed_cidrs` field: the ranges, or null for any address.
    fn value(&self) -> Value {
        if self.ranges.is_empty() {
            Value::Null
        } else {
            json!(self.ranges)
        }
    }
}

/// The networks a credential may be used from, changed.
#[derive(Args, Debug)]
pub struct NetworkChange {
    /// An IPv4 or IPv6 range (192.0.2.0/24, 2001:db8::/32) or address it may be used from;
    /// repeat it or separate ranges by commas. Replaces the ranges it had.
    #[arg(
        long = "allow-cidr",
        value_delimiter = ',',
        value_name = "RANGE",
        required_unless_present = "any_address",
        conflicts_with = "any_address"
    )]
    ranges: Vec<String>,
    /// Allow every address again.
    #[arg(long)]
    any_address: bool,
}

impl NewCredential {
    fn body(&self) -> Value {
        let expires_at = match (&self.expires_at, self.expires_in_days) {
            (Some(at), _) => Some(at.clone()),
            (None, Some(days)) => Some(
                keyward_core::Timestamp::now()
                    .plus_seconds(i64::from(days) * 86_400)
                    .to_string(),
            ),
            (None, None) => None,
        };
        json!({
            "name": self.name,
            "scopes": self.scopes,
            "expires_at": expires_at,
            "allowed_cidrs": self.networks.value(),
            "external_id": self.external_id,
            "meta": self.meta,
        })
    }
}

/// How long a rotated credential keeps working.
#[derive(Args, Debug)]
pub struct Grace {
    /// Seconds the old key keeps working, 0 (stop at once) to 604800 (seven days).
    #[arg(long, value_name = "SECONDS", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=604_800))]
    grace_seconds: u32,
}

/// Ids go into URL paths: refuse anything but the characters ids are made of.
pub(super) fn id(raw: &str) -> Result<&str, ClientError> {
    if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(raw)
    } else {
        Err(ClientError::Usage(format!(
            "{raw:?} is not an id such as key_01h455vb4pex5vsknk084sn02q"
        )))
    }
}

pub(super) const CREDENTIAL_COLUMNS: [&str; 10] = [
    "ID",
    "NAME",
    "KEY",
    "SCOPES",
    "CREATED",
    "LAST USED",
    "EXPIRES",
    "STATUS",
    "NETWORKS",
    "EXTERNAL ID",
];

pub(super) fn credential_row(item: &Value) -> Vec<String> {
    let mut row: Vec<String> = [
        "id",
        "name",
        "hint",
        "scopes",
        "created_at",
        "last_used_at",
        "expires_at",
        "status",
        "allowed_cidrs",
        "external_id",
    ]
    .iter()
    .map(|field| cell(&item[field]))
    .collect();
    // Scopes the server no longer defines grant nothing: say so next to the others.
    let unknown: Vec<String> = item["unknown_scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|name| format!("{name}(unknown)"))
        .collect();
    if !unknown.is_empty() {
        let scopes = &mut row[3];
        scopes.extend([",", &unknown.join(",")]);
    }
    row
}

pub(super) fn print_list(
    client: &Client,
    items: Vec<Value>,
    more: bool,
    headers: &[&str],
    row: fn(&Value) -> Vec<String>,
) {
    let json = json!({ "data": items });
    client.print(&json, |_| {
        print(headers, &items.iter().map(row).collect::<Vec<_>>());
        if more {
            println!("(more: add --all to list every page)");
        }
    });
}

pub(super) fn print_created(client: &Client, created: &Value, what: &str) {
    client.print(created, |created| {
        println!(
            "Created {what} {:?} ({}). It is shown once; store it now:",
            created["name"].as_str().unwrap_or_default(),
            cell(&created["id"])
        );
        println!();
        println!("    {}", created["key"].as_str().unwrap_or_default());
        println!();
        println!("Keep it in an environment variable or a secret manager, never in code.");
    });
}

/// Sets or lifts a credential's network rules, and shows the credential.
pub(super) async fn change_networks(
    client: &Client,
    path: &str,
    change: &NetworkChange,
) -> ClientResult {
    let ranges = (!change.any_address).then_some(&change.ranges);
    let body = json!({ "allowed_cidrs": ranges });
    let updated = client.call(Method::PATCH, path, Some(body)).await?;
    client.print(&updated, |item| {
        print(&CREDENTIAL_COLUMNS, &[credential_row(item)]);
    });
    Ok(())
}

/// The new credential of a rotation, once, and when the old one stops.
pub(super) fn print_rotated(client: &Client, created: &Value, what: &str, old: &str, grace: u32) {
    print_created(client, created, what);
    if !client.json {
        if grace == 0 {
            println!("{old} stopped working now.");
        } else {
            println!("{old} keeps working for {grace} seconds, then stops for good.");
        }
    }
}
