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
    /// Show an API key's verifications per day (UTC) as a chart: allowed as █, refused as ░
    /// (the counts are at most a few seconds late).
    Usage {
        id: String,
        /// Days to show, up to today.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u16).range(1..=400))]
        days: u16,
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
        KeysCommand::Usage { id: raw, days } => {
            let id = id(&raw)?;
            // From the start of the day `days - 1` days ago (the server rounds it down).
            let from = keyward_core::Timestamp::now().plus_seconds(-(i64::from(days) - 1) * 86_400);
            let usage = client
                .get(&format!(
                    "/v1/api-keys/{id}/usage?granularity=day&from={from}"
                ))
                .await?;
            client.print(&usage, |usage| print!("{}", chart(usage)));
        }
    }
    Ok(())
}

/// Width of the longest bar.
const BAR: u64 = 40;

/// A usage answer as a table with a bar per bucket: allowed as █, refused as ░, scaled to
/// the busiest bucket; then the period's totals by outcome.
fn chart(usage: &serde_json::Value) -> String {
    let buckets: Vec<&serde_json::Value> = usage["data"].as_array().into_iter().flatten().collect();
    let busiest = buckets
        .iter()
        .filter_map(|b| b["total"].as_u64())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut text = format!("{:<10}  {:>9}  {:>9}\n", "DAY", "ALLOWED", "REFUSED");
    for bucket in buckets {
        let total = bucket["total"].as_u64().unwrap_or(0);
        let allowed = bucket["outcomes"]["allowed"].as_u64().unwrap_or(0);
        let refused = total.saturating_sub(allowed);
        // Any use at all shows at least one mark.
        let width = |count: u64| match count * BAR / busiest {
            0 if count > 0 => 1,
            width => width,
        };
        let day = bucket["start"].as_str().unwrap_or_default();
        text.push_str(&format!(
            "{:<10}  {allowed:>9}  {refused:>9}  {}{}\n",
            day.get(..10).unwrap_or(day),
            "█".repeat(usize::try_from(width(allowed)).unwrap_or(0)),
            "░".repeat(usize::try_from(width(refused)).unwrap_or(0)),
        ));
    }
    let totals = usage["totals"]
        .as_object()
        .map(|totals| {
            totals
                .iter()
                .map(|(outcome, count)| format!("{outcome} {count}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|line| !line.is_empty())
        .unwrap_or_else(|| "no verifications".to_owned());
    text.push_str(&format!("Total: {}. {totals}.\n", usage["total"]));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_scales_bars_to_the_busiest_day() {
        let usage = json!({
            "total": 25,
            "totals": {"allowed": 22, "rate_limited": 3},
            "data": [
                {"start": "2026-12-04T00:00:00Z", "total": 0, "outcomes": {}},
                {"start": "2026-12-05T00:00:00Z", "total": 20, "outcomes": {"allowed": 18, "rate_limited": 2}},
                {"start": "2026-12-06T00:00:00Z", "total": 5, "outcomes": {"allowed": 4, "rate_limited": 1}},
            ]
        });
        let text = chart(&usage);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "DAY           ALLOWED    REFUSED");
        assert_eq!(lines[1].trim_end(), "2026-12-04          0          0");
        assert_eq!(
            lines[2],
            format!(
                "2026-12-05         18          2  {}{}",
                "█".repeat(36),
                "░".repeat(4)
            )
        );
        assert_eq!(
            lines[3],
            format!(
                "2026-12-06          4          1  {}{}",
                "█".repeat(8),
                "░".repeat(2)
            )
        );
        assert_eq!(lines[4], "Total: 25. allowed 22, rate_limited 3.");
    }
}
