//! `keyward audit`: the organization's audit log.

use clap::Subcommand;
use serde_json::Value;

use super::print_list;
use crate::client::table::cell;
use crate::client::{Client, ClientError, ClientResult};

/// Filters of the audit log.
#[derive(clap::Args, Debug)]
pub struct AuditFilters {
    /// Only this action, such as api_key.revoked.
    #[arg(long)]
    action: Option<String>,
    /// Only what this actor did (usr_…, key_…, tok_…).
    #[arg(long)]
    actor: Option<String>,
    /// Only what was done to this id.
    #[arg(long)]
    target: Option<String>,
}

/// Read the organization's audit log (the key needs `audit:read`).
#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// List events, newest first.
    List {
        #[command(flatten)]
        filters: AuditFilters,
        /// At or after this time (RFC 3339).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Before this time (RFC 3339).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Every page, not only the first 50.
        #[arg(long)]
        all: bool,
    },
    /// Write every event from SINCE until UNTIL to standard output as JSON lines, newest
    /// first, page by page; on a terminal, a progress line goes to standard error.
    Export {
        #[command(flatten)]
        filters: AuditFilters,
        #[arg(long, value_name = "TIME")]
        since: String,
        #[arg(long, value_name = "TIME")]
        until: String,
    },
}

/// The audit log's path with these filters, encoded.
fn audit_path(
    filters: &AuditFilters,
    since: Option<&str>,
    until: Option<&str>,
    limit: Option<u32>,
) -> String {
    let limit = limit.map(|n| n.to_string());
    let pairs = [
        ("action", filters.action.as_deref()),
        ("actor", filters.actor.as_deref()),
        ("target", filters.target.as_deref()),
        ("since", since),
        ("until", until),
        ("limit", limit.as_deref()),
    ];
    let Ok(mut url) = reqwest::Url::parse("http://keyward/") else {
        return "/v1/audit-events".to_owned();
    };
    url.query_pairs_mut()
        .extend_pairs(pairs.iter().filter_map(|(n, v)| v.map(|v| (*n, v))));
    match url.query() {
        Some(query) if !query.is_empty() => format!("/v1/audit-events?{query}"),
        _ => "/v1/audit-events".to_owned(),
    }
}

fn audit_row(event: &Value) -> Vec<String> {
    let actor = &event["actor"];
    let who = match actor["type"].as_str() {
        Some("user") => cell(&actor["email"]),
        Some("credential") => format!("{} ({})", cell(&actor["id"]), cell(&actor["hint"])),
        _ => "system".to_owned(),
    };
    vec![
        cell(&event["at"]),
        cell(&event["action"]),
        who,
        cell(&event["target"]["id"]),
        cell(&event["client_ip"]),
    ]
}

pub async fn audit(client: &Client, command: AuditCommand) -> ClientResult {
    match command {
        AuditCommand::List {
            filters,
            since,
            until,
            all,
        } => {
            let path = audit_path(&filters, since.as_deref(), until.as_deref(), None);
            let (items, more) = client.list(&path, all).await?;
            print_list(
                client,
                items,
                more,
                &["TIME", "ACTION", "ACTOR", "TARGET", "ADDRESS"],
                audit_row,
            );
        }
        AuditCommand::Export {
            filters,
            since,
            until,
        } => {
            use std::io::{IsTerminal, Write};
            let path = audit_path(&filters, Some(&since), Some(&until), Some(100));
            let progress = std::io::stderr().is_terminal();
            let mut stdout = std::io::stdout().lock();
            let mut written = 0_u64;
            let mut page = client.get(&path).await?;
            loop {
                let output = |error: std::io::Error| {
                    ClientError::Api(format!("cannot write the export: {error}"))
                };
                for event in page["data"].as_array().into_iter().flatten() {
                    writeln!(stdout, "{event}").map_err(output)?;
                    written += 1;
                }
                stdout.flush().map_err(output)?;
                if progress {
                    eprint!("\rexported {written} events");
                }
                match page["next_cursor"].as_str() {
                    Some(cursor) => page = client.get(&format!("{path}&cursor={cursor}")).await?,
                    None => break,
                }
            }
            if progress {
                eprintln!();
            }
        }
    }
    Ok(())
}
