//! `keyward members`: the organization's members.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::id;
use crate::client::table::{cell, print};
use crate::client::{Client, ClientResult};

const ROLES: [&str; 3] = ["owner", "admin", "member"];

/// Manage the organization's members (the key needs `members:read` or `members:write`).
#[derive(Subcommand, Debug)]
pub enum MembersCommand {
    /// List members, owners first.
    List,
    /// Add a person who has signed up, by email. A key adds members only (not admins or
    /// owners), and only when it does not expire and holds every scope a member may grant.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long, value_parser = ROLES)]
        role: String,
    },
    /// Change a member's role; the organization keeps at least one owner. A key may lower
    /// an admin to member, never raise anyone.
    SetRole {
        /// The member's user id, usr_….
        user_id: String,
        #[arg(long, value_parser = ROLES)]
        role: String,
    },
    /// Remove a member; the organization keeps at least one owner.
    Remove {
        /// The member's user id, usr_….
        user_id: String,
    },
}

pub async fn members(client: &Client, command: MembersCommand) -> ClientResult {
    let row = |member: &Value| -> Vec<String> {
        ["user_id", "email", "role", "joined_at"]
            .iter()
            .map(|field| cell(&member[field]))
            .collect()
    };
    let columns = ["USER", "EMAIL", "ROLE", "JOINED"];
    match command {
        MembersCommand::List => {
            let listed = client.get("/v1/members").await?;
            client.print(&listed, |listed| {
                let rows: Vec<_> = listed["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(row)
                    .collect();
                print(&columns, &rows);
            });
        }
        MembersCommand::Add { email, role } => {
            let added = client
                .call(
                    Method::POST,
                    "/v1/members",
                    Some(json!({ "email": email, "role": role })),
                )
                .await?;
            client.print(&added, |added| print(&columns, &[row(added)]));
        }
        MembersCommand::SetRole { user_id, role } => {
            let changed = client
                .call(
                    Method::PATCH,
                    &format!("/v1/members/{}", id(&user_id)?),
                    Some(json!({ "role": role })),
                )
                .await?;
            client.print(&changed, |changed| print(&columns, &[row(changed)]));
        }
        MembersCommand::Remove { user_id } => {
            client
                .call(
                    Method::DELETE,
                    &format!("/v1/members/{}", id(&user_id)?),
                    None,
                )
                .await?;
            client.print(&json!({ "removed": user_id }), |_| {
                println!("Removed {user_id} from the organization.");
            });
        }
    }
    Ok(())
}
