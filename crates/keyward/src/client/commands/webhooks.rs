//! `keyward webhooks`: webhook endpoints and their deliveries.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::{id, print_list};
use crate::client::table::cell;
use crate::client::{Client, ClientResult};

/// Manage the organization's webhook endpoints and their deliveries.
#[derive(Subcommand, Debug)]
pub enum WebhooksCommand {
    /// List the endpoints.
    List,
    /// Register an endpoint; its signing secret (whsec_…) is printed once.
    Create {
        /// Where to send: an https:// URL whose host has public addresses.
        #[arg(long, value_name = "URL")]
        endpoint: String,
        /// An event to send (api_key.revoked, project_token.expiring …); repeat it or
        /// separate events by commas.
        #[arg(
            long = "event",
            value_delimiter = ',',
            required = true,
            value_name = "EVENT"
        )]
        events: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Delete an endpoint and its deliveries.
    Delete { id: String },
    /// List an endpoint's deliveries, newest first.
    Deliveries {
        id: String,
        #[arg(long)]
        all: bool,
    },
    /// Send a message to an endpoint again, now.
    Redeliver {
        id: String,
        #[arg(value_name = "MESSAGE_ID")]
        message: String,
    },
}

const WEBHOOK_COLUMNS: [&str; 5] = ["ID", "URL", "EVENTS", "ENABLED", "CREATED"];

fn webhook_row(item: &Value) -> Vec<String> {
    ["id", "url", "events", "enabled", "created_at"]
        .iter()
        .map(|field| cell(&item[field]))
        .collect()
}

const DELIVERY_COLUMNS: [&str; 6] = [
    "MESSAGE",
    "EVENT",
    "STATE",
    "ATTEMPTS",
    "LAST STATUS",
    "LAST ERROR",
];

fn delivery_row(item: &Value) -> Vec<String> {
    [
        "message_id",
        "event_type",
        "state",
        "attempts",
        "last_status",
        "last_error",
    ]
    .iter()
    .map(|field| cell(&item[field]))
    .collect()
}

pub async fn webhooks(client: &Client, command: WebhooksCommand) -> ClientResult {
    match command {
        WebhooksCommand::List => {
            let answer = client.get("/v1/webhooks").await?;
            let items = answer["data"].as_array().cloned().unwrap_or_default();
            print_list(client, items, false, &WEBHOOK_COLUMNS, webhook_row);
        }
        WebhooksCommand::Create {
            endpoint,
            events,
            description,
        } => {
            let body = json!({ "url": endpoint, "events": events, "description": description });
            let created = client
                .call(Method::POST, "/v1/webhooks", Some(body))
                .await?;
            client.print(&created, |created| {
                println!(
                    "Registered {} for {}.",
                    cell(&created["id"]),
                    cell(&created["url"])
                );
                println!("Its signing secret is shown once; give it to the receiver now:");
                println!();
                println!("    {}", created["secret"].as_str().unwrap_or_default());
                println!();
            });
        }
        WebhooksCommand::Delete { id: raw } => {
            let id = id(&raw)?;
            client
                .call(Method::DELETE, &format!("/v1/webhooks/{id}"), None)
                .await?;
            client.print(&json!({ "id": id, "deleted": true }), |_| {
                println!("Deleted {id}: nothing more is sent to it.");
            });
        }
        WebhooksCommand::Deliveries { id: raw, all } => {
            let path = format!("/v1/webhooks/{}/deliveries", id(&raw)?);
            let (items, more) = client.list(&path, all).await?;
            print_list(client, items, more, &DELIVERY_COLUMNS, delivery_row);
        }
        WebhooksCommand::Redeliver { id: raw, message } => {
            let (id, message) = (id(&raw)?, id(&message)?);
            client
                .call(
                    Method::POST,
                    &format!("/v1/webhooks/{id}/deliveries/{message}/redeliver"),
                    None,
                )
                .await?;
            client.print(&json!({ "message_id": message, "queued": true }), |_| {
                println!("Queued {message} for {id}: it is sent again shortly.");
            });
        }
    }
    Ok(())
}
