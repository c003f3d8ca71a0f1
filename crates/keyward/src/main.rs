//! `keyward`: run the server, migrate its database, or bootstrap a fresh install.

mod bootstrap;
mod serve;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use keyward_core::Brand;

/// Keyward: a self-hosted API key and project-token service.
///
/// Start the server with `keyward serve`, then create the first organization and its first
/// API key with `keyward bootstrap --org NAME --email EMAIL`.
#[derive(Parser, Debug)]
#[command(name = "keyward", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Serve(serve::ServeArgs),
    Migrate(MigrateArgs),
    Bootstrap(bootstrap::BootstrapArgs),
}

/// Where Keyward keeps its data.
#[derive(Args, Debug, Clone)]
struct DatabaseArgs {
    /// The database: `sqlite://PATH` for the embedded default (the file and its directory
    /// are created on first start), or `postgres://USER@HOST/DATABASE` for several nodes
    /// sharing one PostgreSQL.
    #[arg(
        long,
        env = "KEYWARD_DATABASE_URL",
        default_value = "sqlite://./keyward-data/keyward.db",
        value_name = "URL"
    )]
    database_url: String,
}

/// The key prefix of this installation.
#[derive(Args, Debug, Clone)]
struct BrandArgs {
    /// Prefix of every key issued and accepted: 1–12 lowercase letters or digits, starting
    /// with a letter (`kw` gives `kwk_…` keys and `kwp_…` project tokens). Every node must
    /// use the same brand; changing it makes existing keys unusable.
    #[arg(
        long,
        env = "KEYWARD_KEY_BRAND",
        default_value = "kw",
        value_name = "BRAND"
    )]
    key_brand: Brand,
}

/// Create or upgrade the database schema, then exit (`serve` also does this on start).
#[derive(Args, Debug)]
struct MigrateArgs {
    #[command(flatten)]
    database: DatabaseArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: could not start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Migrate(args) => migrate(args).await,
            Command::Bootstrap(args) => bootstrap::run(args).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", error_chain(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

type CliResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

async fn migrate(args: MigrateArgs) -> CliResult {
    let store = keyward_store::open(&args.database.database_url).await?;
    store.close().await;
    eprintln!(
        "the database at {} is up to date",
        args.database.database_url
    );
    Ok(())
}

/// An error and its causes on one line.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
