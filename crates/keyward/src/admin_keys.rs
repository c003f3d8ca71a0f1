//! `keyward admin-keys`: the installation's admin keys, made and managed on the host (it
//! opens the database, as `bootstrap` does). The platform's backend keeps the key it prints
//! and manages organizations with it; more admin keys can then be made over the API.

use clap::{Args, Subcommand};
use keyward_server::admin_keys::{create_admin_key, list_admin_keys, revoke_admin_key};
use keyward_store::{Clock, Page};
use serde_json::json;

use crate::{BrandArgs, CliResult, DatabaseArgs};

/// Create, list and revoke admin keys on the host (opens the database).
#[derive(Args, Debug)]
pub struct AdminKeysArgs {
    #[command(subcommand)]
    command: AdminKeysCommand,
}

#[derive(Subcommand, Debug)]
enum AdminKeysCommand {
    /// Create an admin key and print it once.
    Create {
        /// What it is for, such as "platform backend".
        #[arg(long)]
        name: String,
        /// A scope it holds; repeat it, or separate scopes with commas. Installation scopes
        /// (organizations:read, organizations:write, organizations:act, admin_keys:read,
        /// admin_keys:write) and organization scopes, which work while it acts for one.
        #[arg(
            long = "scope",
            value_name = "SCOPE",
            value_delimiter = ',',
            required = true
        )]
        scopes: Vec<String>,
        /// When it stops working (RFC 3339); never, if not given.
        #[arg(long, value_name = "TIME")]
        expires_at: Option<String>,
        /// Print one JSON object (id, key, scopes) instead of text.
        #[arg(long)]
        json: bool,
        /// The configuration file whose `[[scopes]]` it may also hold.
        #[arg(long, env = "KEYWARD_CONFIG", value_name = "FILE")]
        config: Option<std::path::PathBuf>,
        #[command(flatten)]
        brand: BrandArgs,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// List admin keys, newest first (never the keys themselves).
    List {
        /// Print the JSON list instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Revoke an admin key (`adk_…`), at once and for good.
    Revoke {
        #[arg(value_name = "ID")]
        id: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

pub async fn run(args: AdminKeysArgs) -> CliResult {
    let database = match &args.command {
        AdminKeysCommand::Create { database, .. }
        | AdminKeysCommand::List { database, .. }
        | AdminKeysCommand::Revoke { database, .. } => database.database_url.clone(),
    };
    let store = keyward_store::open(database.expose()).await?;
    let outcome = command(store.as_ref(), args.command).await;
    store.close().await;
    outcome
}

async fn command(store: &dyn keyward_store::Store, command: AdminKeysCommand) -> CliResult {
    let now = Clock::system().now();
    match command {
        AdminKeysCommand::Create {
            name,
            scopes,
            expires_at,
            json,
            config,
            brand,
            ..
        } => {
            let catalog = crate::config::catalog(config.as_deref())?;
            let expires_at = expires_at
                .as_deref()
                .map(keyward_core::Timestamp::parse)
                .transpose()
                .map_err(|error| format!("--expires-at {error}"))?;
            let scopes: Vec<String> = scopes.iter().map(|s| s.trim().to_owned()).collect();
            let created = create_admin_key(
                store,
                &brand.key_brand,
                &catalog,
                &name,
                &scopes,
                expires_at,
                now,
            )
            .await?;
            let record = &created.record;
            if json {
                println!(
                    "{}",
                    json!({
                        "id": record.id,
                        "key": created.key.expose_secret(),
                        "scopes": record.scopes.iter().collect::<Vec<_>>(),
                        "expires_at": record.expires_at,
                    })
                );
                return Ok(());
            }
            println!(
                "Admin key \"{}\" ({}) holds: {}. It is shown once; store it now:",
                record.name,
                record.id,
                record.scopes.iter().collect::<Vec<_>>().join(" ")
            );
            println!();
            println!("    {}", created.key.expose_secret());
            println!();
            println!("Keep it in the platform backend's secret store, never in code.");
        }
        AdminKeysCommand::List { json, .. } => {
            let page = list_admin_keys(store, Page::first(100)).await?;
            let rows: Vec<_> = page
                .items
                .iter()
                .map(|record| {
                    json!({
                        "id": record.id,
                        "name": record.name.as_str(),
                        "hint": record.hint,
                        "scopes": record.scopes.iter().collect::<Vec<_>>(),
                        "status": record.status(now),
                        "created_at": record.created_at,
                        "last_used_at": record.last_used_at,
                        "expires_at": record.expires_at,
                    })
                })
                .collect();
            if json {
                println!("{}", json!({ "data": rows, "has_more": page.has_more }));
                return Ok(());
            }
            println!("ID\tNAME\tHINT\tSTATUS\tCREATED\tLAST USED");
            for row in &rows {
                let text = |field: &str| match &row[field] {
                    serde_json::Value::String(text) => text.clone(),
                    serde_json::Value::Null => "-".into(),
                    other => other.to_string(),
                };
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    text("id"),
                    text("name"),
                    text("hint"),
                    text("status"),
                    text("created_at"),
                    text("last_used_at")
                );
            }
        }
        AdminKeysCommand::Revoke { id, .. } => {
            let record = revoke_admin_key(store, &id, now).await?;
            println!(
                "Revoked admin key {} ({}). Through the API (DELETE /v1/admin-keys/{}) every \
                 node refuses it at once; on the host, a running node refuses it once it reads \
                 the key again (at most its cache's maximum age; at once with PostgreSQL).",
                record.id, record.name, record.id
            );
        }
    }
    Ok(())
}
