//! `keyward projects`: the organization's projects.

use clap::Subcommand;
use reqwest::Method;
use serde_json::json;

use super::{id, print_list};
use crate::client::table::cell;
use crate::client::{Client, ClientResult};

/// Manage projects.
#[derive(Subcommand, Debug)]
pub enum ProjectsCommand {
    /// List projects, newest first.
    List {
        #[arg(long)]
        all: bool,
    },
    /// Create a project.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Delete an empty project; its tokens are revoked with it.
    Delete { id: String },
}

pub async fn projects(client: &Client, command: ProjectsCommand) -> ClientResult {
    match command {
        ProjectsCommand::List { all } => {
            let (items, more) = client.list("/v1/projects", all).await?;
            print_list(
                client,
                items,
                more,
                &["ID", "NAME", "CREATED", "DESCRIPTION"],
                |p| {
                    ["id", "name", "created_at", "description"]
                        .iter()
                        .map(|f| cell(&p[f]))
                        .collect()
                },
            );
        }
        ProjectsCommand::Create { name, description } => {
            let body = json!({ "name": name, "description": description });
            let created = client
                .call(Method::POST, "/v1/projects", Some(body))
                .await?;
            client.print(&created, |p| {
                println!(
                    "Created project {:?} ({}).",
                    cell(&p["name"]),
                    cell(&p["id"])
                )
            });
        }
        ProjectsCommand::Delete { id: raw } => {
            let id = id(&raw)?;
            client
                .call(Method::DELETE, &format!("/v1/projects/{id}"), None)
                .await?;
            client.print(&json!({ "id": id, "deleted": true }), |_| {
                println!("Deleted {id}; its project tokens are revoked.");
            });
        }
    }
    Ok(())
}
