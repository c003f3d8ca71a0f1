//! `keyward`: run the server (`serve`), migrate its database, bootstrap an organization, check
//! a configuration file, scan files for leaked keys, and act as a client of a running server
//! (keys, tokens, projects, instances, members, organization, audit, webhooks, whoami, scopes).

mod admin_keys;
mod bootstrap;
mod client;
mod config;
mod scan;
mod serve;

use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use keyward_core::Brand;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Keyward: a self-hosted API key and project-token service.
///
/// Start the server with `keyward serve`, then create the first organization and its first
/// API key with `keyward bootstrap --org NAME --email EMAIL`. The other commands are a client
/// of a running server: they read KEYWARD_URL and KEYWARD_API_KEY from the environment.
#[derive(Parser, Debug)]
#[command(name = "keyward", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Serve(Box<serve::ServeArgs>),
    Migrate(MigrateArgs),
    Bootstrap(bootstrap::BootstrapArgs),
    /// Create, list and revoke the installation's admin keys, on the host (opens the
    /// database, as bootstrap does).
    AdminKeys(admin_keys::AdminKeysArgs),
    /// The installation's organizations, with an admin key (list, create, show, suspend,
    /// resume, delete).
    Organizations {
        #[command(subcommand)]
        command: client::OrganizationsCommand,
        #[command(flatten)]
        connection: client::Connection,
    },
    /// Manage the organization's API keys (list, create, show, revoke).
    Keys {
        #[command(subcommand)]
        command: client::KeysCommand,
        #[command(flatten)]
        connection: client::Connection,
    },
    /// Manage projects (list, create, delete).
    Projects {
        #[command(subcommand)]
        command: client::ProjectsCommand,
        #[command(flatten)]
        connection: client::Connection,
    },
    /// Manage a project's tokens (list, create, revoke).
    Tokens {
        #[command(subcommand)]
        command: client::TokensCommand,
        #[command(flatten)]
        connection: client::Connection,
    },
    /// List instances.
    Instances {
        #[command(subcommand)]
        command: client::InstancesCommand,
        #[command(flatten)]
        connection: client::Connection,
    },
    /// Show what the API key in use is: its id, kind, organization, project and scopes.
    Whoami {
        #[command(flatten)]
        connection: client::Connection,
    },
    /// Manage the organization's members and invitations (list, add, invitations, resend,
    /// cancel, set-role, remove).
    Members {
        #[command(subcommand)]
        command: client::MembersCommand,
        #[command(flatten)]
        connection: client::Connection,
    },
    /// Show the organization, and change its policy for new keys (show, set-policy).
    Organization {
        #[command(subcommand)]
        command: client::OrganizationCommand,
        #[command(flatten)]
        connection: client::Connection,
    },
    /// Read the organization's audit log (list, export).
    Audit {
        #[command(subcommand)]
        command: client::AuditCommand,
        #[command(flatten)]
        connection: client::Connection,
    },
    /// Manage webhook endpoints and their deliveries (list, create, delete, deliveries,
    /// redeliver).
    Webhooks {
        #[command(subcommand)]
        command: client::WebhooksCommand,
        #[command(flatten)]
        connection: client::Connection,
    },
    /// List the scopes a key may be granted: Keyward's own and the platform's.
    Scopes {
        #[command(flatten)]
        connection: client::Connection,
    },
    Scan(scan::ScanArgs),
    /// Check a configuration file for `keyward serve`.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Check FILE without starting anything: every setting known and valid. Prints one line
    /// naming the file, the line and the problem, and exits with 2, at the first mistake.
    Check {
        /// The configuration file (TOML).
        #[arg(value_name = "FILE")]
        file: std::path::PathBuf,
    },
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
    database_url: keyward_store::DatabaseUrl,
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

/// The command line, with `keyward serve`'s configuration file applied (see [`config`]),
/// and what the file declares of the platform.
fn parse() -> Result<(Cli, serve::Platform), config::ConfigError> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let matches = Cli::command().get_matches_from(&args);
    let (args, platform) = match matches.subcommand() {
        Some(("serve", serve)) => config::apply(args, serve)?,
        _ => (args, serve::Platform::default()),
    };
    let matches = Cli::command().get_matches_from(args);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    Ok((cli, platform))
}

fn main() -> ExitCode {
    let (cli, platform) = match parse() {
        Ok(parsed) => parsed,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    if let Command::Serve(args) = &cli.command
        && let Some(mistake) = args.mistake()
    {
        eprintln!("error: {mistake}");
        return ExitCode::from(2);
    }
    if let Command::Config {
        command: ConfigCommand::Check { file },
    } = &cli.command
    {
        return match config::load(file) {
            Ok(settings) => {
                let plural = |n: usize| if n == 1 { "" } else { "s" };
                let platform = &settings.platform;
                let options = settings.settings.len();
                let scopes = platform.scopes.iter().filter(|(_, s)| !s.builtin).count();
                let rules = platform.routes.len();
                println!(
                    "{}: valid ({options} setting{}, {scopes} platform scope{}, {rules} route \
                     rule{})",
                    file.display(),
                    plural(options),
                    plural(scopes),
                    plural(rules)
                );
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::from(2)
            }
        };
    }
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
    let command = match cli.command {
        Command::Scan(args) => return runtime.block_on(scan::run(args)),
        other => other,
    };
    let outcome = runtime.block_on(async {
        match command {
            Command::Serve(args) => serve::run(*args, platform).await.map_err(Failure::from),
            Command::Migrate(args) => migrate(args).await.map_err(Failure::from),
            Command::Bootstrap(args) => bootstrap::run(args).await.map_err(Failure::from),
            Command::AdminKeys(args) => admin_keys::run(args).await.map_err(Failure::from),
            Command::Organizations {
                command,
                connection,
            } => {
                let client = client::Client::new(&connection)?;
                Ok(client::commands_organizations(&client, command).await?)
            }
            Command::Keys {
                command,
                connection,
            } => {
                let client = client::Client::new(&connection)?;
                Ok(client::commands_keys(&client, command).await?)
            }
            Command::Projects {
                command,
                connection,
            } => {
                let client = client::Client::new(&connection)?;
                Ok(client::commands_projects(&client, command).await?)
            }
            Command::Tokens {
                command,
                connection,
            } => {
                let client = client::Client::new(&connection)?;
                Ok(client::commands_tokens(&client, command).await?)
            }
            Command::Instances {
                command,
                connection,
            } => {
                let client = client::Client::new(&connection)?;
                Ok(client::commands_instances(&client, command).await?)
            }
            Command::Whoami { connection } => {
                let client = client::Client::new(&connection)?;
                Ok(client::commands_whoami(&client).await?)
            }
            Command::Members {
                command,
                connection,
            } => {
                let client = client::Client::new(&connection)?;
                Ok(client::commands_members(&client, command).await?)
            }
            Command::Organization {
                command,
                connection,
            } => {
                let client = client::Client::new(&connection)?;
                Ok(client::commands_organization(&client, command).await?)
            }
            Command::Audit {
                command,
                connection,
            } => {
                let client = client::Client::new(&connection)?;
                Ok(client::commands_audit(&client, command).await?)
            }
            Command::Webhooks {
                command,
                connection,
            } => {
                let client = client::Client::new(&connection)?;
                Ok(client::commands_webhooks(&client, command).await?)
            }
            Command::Scopes { connection } => {
                let client = client::Client::new(&connection)?;
                Ok(client::commands_scopes(&client).await?)
            }
            // Both handled above, before the runtime's general case.
            Command::Config { .. } | Command::Scan(_) => Ok(()),
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// A failed command: what to print and the exit code.
struct Failure {
    message: String,
    code: u8,
}

impl From<Box<dyn std::error::Error + Send + Sync>> for Failure {
    fn from(error: Box<dyn std::error::Error + Send + Sync>) -> Self {
        Self {
            message: error_chain(error.as_ref()),
            code: 1,
        }
    }
}

impl From<client::ClientError> for Failure {
    fn from(error: client::ClientError) -> Self {
        Self {
            message: error.message().to_owned(),
            code: error.exit_code(),
        }
    }
}

type CliResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

async fn migrate(args: MigrateArgs) -> CliResult {
    let store = keyward_store::open(args.database.database_url.expose()).await?;
    store.close().await;
    eprintln!(
        "the database at {} is up to date",
        args.database.database_url
    );
    Ok(())
}

/// An error and its causes on one line, each said once: many errors repeat their cause in
/// their own message.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
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

    #[test]
    fn error_chains_say_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot open the database sqlite://x.db")]
        struct Outer(#[source] Middle);
        #[derive(Debug, thiserror::Error)]
        #[error("error communicating with database: {0}")]
        struct Middle(#[source] std::io::Error);
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        assert_eq!(
            error_chain(&Outer(Middle(io))),
            "cannot open the database sqlite://x.db: error communicating with database: \
             Connection refused"
        );
    }
}
