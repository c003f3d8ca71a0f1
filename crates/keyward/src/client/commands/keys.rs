//! `keyward keys`: the organization's API keys.

use clap::Subcommand;
use reqwest::Method;
use serde_json::json;

use super::{
    CREDENTIAL_COLUMNS, CredentialChange, Grace, NetworkChange, NewCredential, change_networks,
    credential_row, id, list_path, print_created, print_list, print_rotated, update,
};
use crate::client::table::print;
use crate::client::{Client, ClientResult};

/// Manage the organization's API keys.
#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// List API keys, newest first.
    List {
        /// Every page, not only the first 50.
        #[arg(long)]
        all: bool,
        /// Only the keys with this external id.
        #[arg(long, value_name = "ID")]
        external_id: Option<String>,
    },
    /// Create an API key; its secret is printed once.
    Create(NewCredential),
    /// Show one API key.
    Show { id: String },
    /// Revoke an API key: immediate and permanent.
    Revoke { id: String },
    /// Rename an API key, or change its external id or meta.
    Update {
        id: String,
        #[command(flatten)]
        change: CredentialChange,
    },
    /// Limit the addresses an API key may be used from (--allow-cidr), or lift the limit
    /// (--any-address); from its next request on.
    Networks {
        id: String,
        #[command(flatten)]
        change: NetworkChange,
    },
    /// Rotate an API key: a new key with the same name, scopes and limits is printed once;
    /// the old one keeps working for the grace, then is refused as if revoked.
    Rotate {
        id: String,
        #[command(flatten)]
        grace: Grace,
    },
}

pub async fn keys(client: &Client, command: KeysCommand) -> ClientResult {
    match command {
        KeysCommand::List { all, external_id } => {
            let path = list_path("/v1/api-keys", external_id.as_deref());
            let (items, more) = client.list(&path, all).await?;
            print_list(client, items, more, &CREDENTIAL_COLUMNS, credential_row);
        }
        KeysCommand::Create(new) => {
            let created = client
                .call(Method::POST, "/v1/api-keys", Some(new.body()))
                .await?;
            print_created(client, &created, "API key");
        }
        KeysCommand::Show { id: raw } => {
            let key = client.get(&format!("/v1/api-keys/{}", id(&raw)?)).await?;
            client.print(&key, |key| {
                print(&CREDENTIAL_COLUMNS, &[credential_row(key)])
            });
        }
        KeysCommand::Revoke { id: raw } => {
            let id = id(&raw)?;
            client
                .call(Method::DELETE, &format!("/v1/api-keys/{id}"), None)
                .await?;
            client.print(&json!({ "id": id, "revoked": true }), |_| {
                println!("Revoked {id}: applications using it have lost access.");
            });
        }
        KeysCommand::Update { id: raw, change } => {
            update(client, &format!("/v1/api-keys/{}", id(&raw)?), &change).await?;
        }
        KeysCommand::Networks { id: raw, change } => {
            let path = format!("/v1/api-keys/{}", id(&raw)?);
            change_networks(client, &path, &change).await?;
        }
        KeysCommand::Rotate { id: raw, grace } => {
            let id = id(&raw)?;
            let created = client
                .call(
                    Method::POST,
                    &format!("/v1/api-keys/{id}/rotate"),
                    Some(json!({ "grace_seconds": grace.grace_seconds })),
                )
                .await?;
            print_rotated(client, &created, "API key", id, grace.grace_seconds);
        }
    }
    Ok(())
}
