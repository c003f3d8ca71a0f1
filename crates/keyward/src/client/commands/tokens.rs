//! `keyward tokens`: one project's tokens.

use clap::Subcommand;
use reqwest::Method;
use serde_json::json;

use super::{
    CREDENTIAL_COLUMNS, CredentialChange, Grace, NetworkChange, NewCredential, change_networks,
    credential_row, id, list_path, print_created, print_list, print_rotated, update,
};
use crate::client::{Client, ClientResult};

/// Manage one project's tokens.
#[derive(Subcommand, Debug)]
pub enum TokensCommand {
    /// List a project's tokens, newest first.
    List {
        #[arg(long, value_name = "PROJECT_ID")]
        project: String,
        #[arg(long)]
        all: bool,
        /// Only the tokens with this external id.
        #[arg(long, value_name = "ID")]
        external_id: Option<String>,
    },
    /// Create a project token (project-level scopes only); its secret is printed once.
    Create {
        #[arg(long, value_name = "PROJECT_ID")]
        project: String,
        #[command(flatten)]
        credential: NewCredential,
    },
    /// Revoke a project token: immediate and permanent.
    Revoke {
        #[arg(long, value_name = "PROJECT_ID")]
        project: String,
        id: String,
    },
    /// Rename a project token, or change its external id or meta.
    Update {
        #[arg(long, value_name = "PROJECT_ID")]
        project: String,
        id: String,
        #[command(flatten)]
        change: CredentialChange,
    },
    /// Limit the addresses a project token may be used from (--allow-cidr), or lift the
    /// limit (--any-address); from its next request on.
    Networks {
        #[arg(long, value_name = "PROJECT_ID")]
        project: String,
        id: String,
        #[command(flatten)]
        change: NetworkChange,
    },
    /// Rotate a project token: a new one is printed once; the old one keeps working for the
    /// grace, then is refused as if revoked.
    Rotate {
        #[arg(long, value_name = "PROJECT_ID")]
        project: String,
        id: String,
        #[command(flatten)]
        grace: Grace,
    },
}

pub async fn tokens(client: &Client, command: TokensCommand) -> ClientResult {
    match command {
        TokensCommand::List {
            project,
            all,
            external_id,
        } => {
            let base = format!("/v1/projects/{}/tokens", id(&project)?);
            let path = list_path(&base, external_id.as_deref());
            let (items, more) = client.list(&path, all).await?;
            print_list(client, items, more, &CREDENTIAL_COLUMNS, credential_row);
        }
        TokensCommand::Create {
            project,
            credential,
        } => {
            let path = format!("/v1/projects/{}/tokens", id(&project)?);
            let created = client
                .call(Method::POST, &path, Some(credential.body()))
                .await?;
            print_created(client, &created, "project token");
        }
        TokensCommand::Revoke { project, id: raw } => {
            let (project, id) = (id(&project)?, id(&raw)?);
            client
                .call(
                    Method::DELETE,
                    &format!("/v1/projects/{project}/tokens/{id}"),
                    None,
                )
                .await?;
            client.print(&json!({ "id": id, "revoked": true }), |_| {
                println!("Revoked {id}: applications using it have lost access.");
            });
        }
        TokensCommand::Update {
            project,
            id: raw,
            change,
        } => {
            let path = format!("/v1/projects/{}/tokens/{}", id(&project)?, id(&raw)?);
            update(client, &path, &change).await?;
        }
        TokensCommand::Networks {
            project,
            id: raw,
            change,
        } => {
            let path = format!("/v1/projects/{}/tokens/{}", id(&project)?, id(&raw)?);
            change_networks(client, &path, &change).await?;
        }
        TokensCommand::Rotate {
            project,
            id: raw,
            grace,
        } => {
            let (project, id) = (id(&project)?, id(&raw)?);
            let created = client
                .call(
                    Method::POST,
                    &format!("/v1/projects/{project}/tokens/{id}/rotate"),
                    Some(json!({ "grace_seconds": grace.grace_seconds })),
                )
                .await?;
            print_rotated(client, &created, "project token", id, grace.grace_seconds);
        }
    }
    Ok(())
}
