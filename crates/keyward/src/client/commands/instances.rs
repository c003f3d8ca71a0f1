//! `keyward instances`: read instances.

use clap::Subcommand;

use super::{id, print_list};
use crate::client::table::cell;
use crate::client::{Client, ClientResult};

/// Read instances.
#[derive(Subcommand, Debug)]
pub enum InstancesCommand {
    /// List instances, newest first, optionally of one project.
    List {
        #[arg(long, value_name = "PROJECT_ID")]
        project: Option<String>,
        #[arg(long)]
        all: bool,
    },
}

pub async fn instances(client: &Client, command: InstancesCommand) -> ClientResult {
    match command {
        InstancesCommand::List { project, all } => {
            let path = match &project {
                Some(project) => format!("/v1/instances?project_id={}", id(project)?),
                None => "/v1/instances".to_owned(),
            };
            let (items, more) = client.list(&path, all).await?;
            print_list(
                client,
                items,
                more,
                &["ID", "NAME", "PROJECT", "REGION", "STATUS", "CREATED"],
                |i| {
                    ["id", "name", "project_id", "region", "status", "created_at"]
                        .iter()
                        .map(|f| cell(&i[f]))
                        .collect()
                },
            );
        }
    }
    Ok(())
}
