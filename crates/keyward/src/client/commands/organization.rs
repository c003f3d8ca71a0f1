//! `keyward organization`: the organization and its policy for new credentials.

use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

use crate::client::table::{cell, print};
use crate::client::{Client, ClientError, ClientResult};

/// The organization's policy for new keys and tokens.
#[derive(Subcommand, Debug)]
pub enum OrganizationCommand {
    /// Show the organization and its policy (any key).
    Show,
    /// Change the policy (the key needs organization:write, which only owners can grant).
    SetPolicy {
        /// Longest lifetime of a new key, in days (1 to 3650); `none` removes the maximum.
        #[arg(long, value_name = "DAYS")]
        max_lifetime_days: Option<String>,
        /// Whether every new key must have an expiry.
        #[arg(long, value_name = "BOOL")]
        require_expiry: Option<bool>,
        /// What GitHub's report of an exposed key does: revoke it (the default) or flag it.
        #[arg(long, value_name = "ACTION", value_parser = ["revoke", "flag"])]
        leak_action: Option<String>,
    },
}

pub async fn organization(client: &Client, command: OrganizationCommand) -> ClientResult {
    let answer = match command {
        OrganizationCommand::Show => client.get("/v1/organization").await?,
        OrganizationCommand::SetPolicy {
            max_lifetime_days,
            require_expiry,
            leak_action,
        } => {
            let mut body = serde_json::Map::new();
            if let Some(days) = max_lifetime_days {
                let value = if days == "none" {
                    Value::Null
                } else {
                    let days: u32 = days.parse().map_err(|_| {
                        ClientError::Usage(format!(
                            "--max-lifetime-days {days:?}: give a number of days, or none"
                        ))
                    })?;
                    Value::from(days)
                };
                body.insert("max_lifetime_days".into(), value);
            }
            if let Some(required) = require_expiry {
                body.insert("require_expiry".into(), Value::Bool(required));
            }
            if let Some(action) = leak_action {
                body.insert("leak_action".into(), Value::String(action));
            }
            if body.is_empty() {
                return Err(ClientError::Usage(
                    "say what to change: --max-lifetime-days, --require-expiry or --leak-action"
                        .into(),
                ));
            }
            client
                .call(Method::PATCH, "/v1/organization", Some(Value::Object(body)))
                .await?
        }
    };
    client.print(&answer, |org| {
        let row: Vec<String> = [
            "id",
            "name",
            "max_lifetime_days",
            "require_expiry",
            "leak_action",
        ]
        .iter()
        .map(|field| cell(&org[field]))
        .collect();
        print(
            &[
                "ID",
                "NAME",
                "MAX LIFETIME (DAYS)",
                "EXPIRY REQUIRED",
                "LEAKED KEYS",
            ],
            &[row],
        );
    });
    Ok(())
}
