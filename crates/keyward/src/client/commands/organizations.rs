//! `keyward organizations`: the installation's organizations, with an admin key holding
//! `organizations:read` / `organizations:write`.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::table::{cell, print};
use crate::client::{Client, ClientError, ClientResult};

/// The installation's organizations (an admin key).
#[derive(Subcommand, Debug)]
pub enum OrganizationsCommand {
    /// List organizations, newest first.
    List {
        /// Only the one with this external id.
        #[arg(long, value_name = "ID")]
        external_id: Option<String>,
        /// Only names starting with this.
        #[arg(long, value_name = "TEXT")]
        name_prefix: Option<String>,
        /// Only `active` or `suspended` ones.
        #[arg(long, value_parser = ["active", "suspended"])]
        status: Option<String>,
        /// Every page, not just the first.
        #[arg(long)]
        all: bool,
    },
    /// Create an organization for a customer.
    Create {
        /// Its name (need not be unique).
        #[arg(long)]
        name: String,
        /// The platform's id for the customer (unique).
        #[arg(long, value_name = "ID")]
        external_id: Option<String>,
        /// Its owner: the account with this email, or a new person without a password.
        #[arg(long, value_name = "EMAIL")]
        owner_email: Option<String>,
    },
    /// Show one organization (`org_…` or `ext:<external id>`).
    Show { organization: String },
    /// Refuse every credential of the organization until it is resumed.
    Suspend { organization: String },
    /// Accept the organization's credentials again.
    Resume { organization: String },
    /// Delete the organization: every credential revoked, projects and members removed.
    Delete { organization: String },
}

/// A path segment as typed: ids and `ext:` ids need no more than `%`-encoding of the odd
/// character.
fn segment(organization: &str) -> String {
    organization
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn query_part(name: &str, value: &str) -> String {
    format!("{name}={}", segment(value))
}

pub async fn organizations(client: &Client, command: OrganizationsCommand) -> ClientResult {
    let answer = match command {
        OrganizationsCommand::List {
            external_id,
            name_prefix,
            status,
            all,
        } => {
            let filters: Vec<String> = [
                ("external_id", external_id),
                ("name_prefix", name_prefix),
                ("status", status),
            ]
            .into_iter()
            .filter_map(|(name, value)| value.map(|value| query_part(name, &value)))
            .collect();
            let path = match filters.is_empty() {
                true => "/v1/organizations".to_owned(),
                false => format!("/v1/organizations?{}", filters.join("&")),
            };
            let (items, more) = client.list(&path, all).await?;
            client.print(&json!({ "data": items, "has_more": more }), |_| {
                let rows: Vec<Vec<String>> = items.iter().map(row).collect();
                print(HEADERS, &rows);
                if more {
                    println!("(more: add --all)");
                }
            });
            return Ok(());
        }
        OrganizationsCommand::Create {
            name,
            external_id,
            owner_email,
        } => {
            let mut body = json!({ "name": name });
            if let Some(external_id) = external_id {
                body["external_id"] = Value::String(external_id);
            }
            if let Some(email) = owner_email {
                body["owner"] = json!({ "email": email });
            }
            client
                .call(Method::POST, "/v1/organizations", Some(body))
                .await?
        }
        OrganizationsCommand::Show { organization } => {
            client
                .get(&format!("/v1/organizations/{}", segment(&organization)))
                .await?
        }
        OrganizationsCommand::Suspend { organization } => {
            status(client, &organization, "suspended").await?
        }
        OrganizationsCommand::Resume { organization } => {
            status(client, &organization, "active").await?
        }
        OrganizationsCommand::Delete { organization } => {
            client
                .call(
                    Method::DELETE,
                    &format!("/v1/organizations/{}", segment(&organization)),
                    None,
                )
                .await?;
            if !client.json {
                println!("Deleted {organization}: its credentials are revoked.");
            }
            return Ok(());
        }
    };
    client.print(&answer, |org| print(HEADERS, &[row(org)]));
    Ok(())
}

const HEADERS: &[&str] = &["ID", "NAME", "EXTERNAL ID", "STATUS", "CREATED"];

fn row(org: &Value) -> Vec<String> {
    ["id", "name", "external_id", "status", "created_at"]
        .iter()
        .map(|field| cell(&org[field]))
        .collect()
}

async fn status(client: &Client, organization: &str, status: &str) -> Result<Value, ClientError> {
    client
        .call(
            Method::PATCH,
            &format!("/v1/organizations/{}", segment(organization)),
            Some(json!({ "status": status })),
        )
        .await
}
