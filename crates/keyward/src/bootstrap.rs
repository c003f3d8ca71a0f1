//! `keyward bootstrap`.

use std::io::Read;

use clap::Args;
use keyward_core::password::Password;
use keyward_server::bootstrap::bootstrap_organization;
use serde_json::json;

use crate::{BrandArgs, CliResult, DatabaseArgs};

/// Create an organization, its owner and a first API key holding every scope.
///
/// This is how a fresh install gets its first credential. The key (and a generated password,
/// if any) is shown once and can never be shown again. If the email already has an account,
/// that user becomes the owner of the new organization and keeps their password.
#[derive(Args, Debug)]
pub struct BootstrapArgs {
    /// Name of the new organization (it must not exist yet).
    #[arg(long, value_name = "NAME")]
    org: String,

    /// Email of the organization's owner.
    #[arg(long, value_name = "EMAIL")]
    email: String,

    /// Read the owner's password from standard input (at least 10 characters) instead of
    /// generating one.
    #[arg(long)]
    password_stdin: bool,

    /// Print one JSON object (organization_id, user_id, key_id, key, and password if one
    /// was generated) instead of text.
    #[arg(long)]
    json: bool,

    /// The configuration file whose `[[scopes]]` the first key also gets (`./keyward.toml`
    /// when it exists), as `keyward serve --config` reads it.
    #[arg(long, env = "KEYWARD_CONFIG", value_name = "FILE")]
    config: Option<std::path::PathBuf>,

    #[command(flatten)]
    database: DatabaseArgs,

    #[command(flatten)]
    brand: BrandArgs,
}

pub async fn run(args: BootstrapArgs) -> CliResult {
    let password = if args.password_stdin {
        let mut raw = String::new();
        std::io::stdin()
            .read_to_string(&mut raw)
            .map_err(|error| format!("could not read the password from standard input: {error}"))?;
        let line = raw.strip_suffix('\n').unwrap_or(&raw);
        let line = line.strip_suffix('\r').unwrap_or(line);
        // An unparseable email is reported by bootstrap itself, below.
        let password = match keyward_core::Email::parse(&args.email) {
            Ok(email) => Password::parse_new(line.to_owned(), &email)?,
            Err(_) => Password::parse(line.to_owned())?,
        };
        Some(password)
    } else {
        None
    };

    let catalog = crate::config::catalog(args.config.as_deref())?;
    let store = keyward_store::open(args.database.database_url.expose()).await?;
    let created = bootstrap_organization(
        store.as_ref(),
        &args.brand.key_brand,
        &catalog,
        &args.org,
        &args.email,
        password,
        keyward_store::Clock::system().now(),
    )
    .await;
    store.close().await;
    let created = created?;

    if args.json {
        let mut object = json!({
            "organization_id": created.organization_id,
            "user_id": created.user_id,
            "key_id": created.key_id,
            "key": created.key.expose_secret(),
        });
        if let Some(password) = &created.generated_password {
            object["password"] = json!(password.expose_secret());
        }
        println!("{object}");
        return Ok(());
    }

    println!(
        "Created organization {:?} ({}).",
        args.org.trim(),
        created.organization_id
    );
    if created.user_created {
        println!("Owner: {} ({}).", args.email.trim(), created.user_id);
    } else {
        println!(
            "Owner: {} ({}), an existing account; its password is unchanged.",
            args.email.trim(),
            created.user_id
        );
    }
    if let Some(password) = &created.generated_password {
        println!(
            "Owner's password (shown once): {}",
            password.expose_secret()
        );
    }
    println!();
    println!(
        "API key \"bootstrap\" ({}) holds every scope. It is shown once; store it now:",
        created.key_id
    );
    println!();
    println!("    {}", created.key.expose_secret());
    println!();
    println!("Keep it in an environment variable, for example KEYWARD_API_KEY, never in code.");
    Ok(())
}
