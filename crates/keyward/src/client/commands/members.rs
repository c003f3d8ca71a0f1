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
    /// Invite a person by email, whether or not they have an account: they join when they
    /// accept (through the emailed link with `[smtp]`, else at their next sign-in or sign-up).
    /// A key invites members only (not admins or owners), and only when it does not expire
    /// and holds every scope a member may grant.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long, value_parser = ROLES)]
        role: String,
    },
    /// List the open invitations (expired ones too, until resent or cancelled).
    Invitations,
    /// Give an open invitation seven more days and, with email, a new link (the old one stops
    /// working).
    Resend {
        /// The invitation's id, inv_….
        invitation_id: String,
    },
    /// Cancel an open invitation: its link stops working.
    Cancel {
        /// The invitation's id, inv_….
        invitation_id: String,
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

const INVITATION_COLUMNS: [&str; 5] = ["INVITATION", "EMAIL", "ROLE", "STATUS", "EXPIRES"];

fn invitation_row(invitation: &Value) -> Vec<String> {
    ["invitation_id", "email", "role", "status", "expires_at"]
        .iter()
        .map(|field| cell(&invitation[field]))
        .collect()
}

/// A new or renewed invitation, and what happens next.
fn show_invitation(invitation: &Value) {
    print(&INVITATION_COLUMNS, &[invitation_row(invitation)]);
    let email = invitation["email"].as_str().unwrap_or_default();
    let next = if invitation["emailed"] == Value::Bool(true) {
        format!("Emailed a link to {email}; they join when they accept it.")
    } else {
        format!(
            "Not emailed (the server has no [smtp]): {email} joins on accepting it at their next \
             sign-in or sign-up."
        )
    };
    println!("{next}");
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
            let invited = client
                .call(
                    Method::POST,
                    "/v1/members",
                    Some(json!({ "email": email, "role": role })),
                )
                .await?;
            client.print(&invited, show_invitation);
        }
        MembersCommand::Invitations => {
            let listed = client.get("/v1/invitations").await?;
            client.print(&listed, |listed| {
                let rows: Vec<_> = listed["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(invitation_row)
                    .collect();
                print(&INVITATION_COLUMNS, &rows);
            });
        }
        MembersCommand::Resend { invitation_id } => {
            let renewed = client
                .call(
                    Method::POST,
                    &format!("/v1/invitations/{}/resend", id(&invitation_id)?),
                    None,
                )
                .await?;
            client.print(&renewed, show_invitation);
        }
        MembersCommand::Cancel { invitation_id } => {
            client
                .call(
                    Method::DELETE,
                    &format!("/v1/invitations/{}", id(&invitation_id)?),
                    None,
                )
                .await?;
            client.print(&json!({ "cancelled": invitation_id }), |_| {
                println!("Cancelled the invitation {invitation_id}: its link no longer works.");
            });
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
