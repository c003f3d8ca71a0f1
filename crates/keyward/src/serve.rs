//! `keyward serve`.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use keyward_core::webhook::SigningKey;
use keyward_server::passwords::PasswordLimits;
use keyward_server::{AppState, Config, ConnectionLimits};
use tokio::net::TcpListener;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

use crate::{BrandArgs, CliResult, DatabaseArgs};

/// Run the HTTP server: the REST API under /v1, /healthz and /readyz.
///
/// Runs the database migrations on start, logs the address it serves, and on SIGINT or
/// SIGTERM finishes in-flight requests and writes pending last-use times before exiting.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// A configuration file (TOML) setting any of these options, under their names in snake
    /// case (`cache_max_age_seconds = 30`); flags and environment variables override it.
    /// Without it, `./keyward.toml` is read if it exists. `keyward config check FILE` checks
    /// one.
    #[arg(long, env = "KEYWARD_CONFIG", value_name = "FILE")]
    config: Option<std::path::PathBuf>,

    /// Address and port to listen on (port 0 picks a free one).
    #[arg(
        long,
        env = "KEYWARD_LISTEN",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    listen: SocketAddr,

    #[command(flatten)]
    database: DatabaseArgs,

    #[command(flatten)]
    brand: BrandArgs,

    /// Seconds between writes of last-use times to the database; the dashboard's "last used"
    /// may lag by this much.
    #[arg(
        long,
        env = "KEYWARD_LAST_USED_FLUSH_SECONDS",
        default_value_t = 5,
        value_parser = clap::value_parser!(u64).range(1..=3600),
        value_name = "SECONDS"
    )]
    last_used_flush_seconds: u64,

    /// Days the audit log keeps an event; older ones are deleted by a background job (one
    /// node at a time when several share a database).
    #[arg(
        long,
        env = "KEYWARD_AUDIT_RETENTION_DAYS",
        default_value_t = 365,
        value_parser = clap::value_parser!(u64).range(1..=36500),
        value_name = "DAYS"
    )]
    audit_retention_days: u64,

    /// Days of hourly usage counts (verifications by credential and outcome) to keep; older
    /// ones are pruned every hour.
    #[arg(
        long,
        env = "KEYWARD_USAGE_RETENTION_DAYS",
        default_value_t = 90,
        value_parser = clap::value_parser!(u64).range(1..=36500),
        value_name = "DAYS"
    )]
    usage_retention_days: u64,

    /// Seconds a verified key may be answered from memory before it is read again (a
    /// backstop: revocation clears it at once). Lower costs more database reads.
    #[arg(
        long,
        env = "KEYWARD_CACHE_MAX_AGE_SECONDS",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..=3600),
        value_name = "SECONDS"
    )]
    cache_max_age_seconds: u64,

    /// With several nodes on PostgreSQL: while a node cannot reach the database, for how many
    /// seconds after losing it the keys it verified before keep working (0: refuse at once).
    /// A key revoked on another node meanwhile keeps working on this one until then. Defaults
    /// to --cache-max-age-seconds.
    #[arg(
        long,
        env = "KEYWARD_OUTAGE_GRACE_SECONDS",
        value_parser = clap::value_parser!(u64).range(0..=86400),
        value_name = "SECONDS"
    )]
    outage_grace_seconds: Option<u64>,

    /// Proxies in front of Keyward (addresses or ranges, comma-separated: 10.0.4.7,127.0.0.1)
    /// whose X-Forwarded-For is believed. A request from one of them is taken to come from
    /// the right-most X-Forwarded-For address that is not one of them; that address is what
    /// network rules of keys, last addresses, the log-in throttle and the audit log see.
    /// List only your proxies: any listed host can claim any client address. Without it, the
    /// client is the TCP peer and X-Forwarded-For is ignored.
    #[arg(
        long,
        env = "KEYWARD_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_parser = parse_range,
        value_name = "RANGES"
    )]
    trusted_proxies: Vec<keyward_core::Cidr>,

    /// The file holding the installation's webhook signing key, from which every endpoint's
    /// secret is derived (no secret is stored in the database). Created, readable by its
    /// owner only, if missing. Every node must have the same file. Defaults to
    /// `webhooks.key` beside the SQLite database, or `./keyward-data/webhooks.key`.
    #[arg(long, env = "KEYWARD_WEBHOOKS_KEY_FILE", value_name = "FILE")]
    webhooks_key_file: Option<std::path::PathBuf>,

    /// Let webhooks go to loopback, private and link-local addresses (refused by default, as
    /// a guard against server-side request forgery). In the configuration file:
    /// `[webhooks] allow_private_networks = true`.
    #[arg(
        long,
        env = "KEYWARD_WEBHOOKS_ALLOW_PRIVATE_NETWORKS",
        value_name = "BOOL",
        num_args = 0..=1,
        default_value_t = false,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    webhooks_allow_private_networks: bool,

    /// GitHub's secret-scanning public keys: the document GitHub publishes at
    /// https://api.github.com/meta/public_keys/secret_scanning, saved as a file (read again
    /// when it changes). Without it, `/v1/secret-scanning/github` refuses every report. In the
    /// configuration file: `[secret_scanning] github_keys_file = "…"`.
    #[arg(long, env = "KEYWARD_GITHUB_KEYS_FILE", value_name = "FILE")]
    github_keys_file: Option<std::path::PathBuf>,

    /// Where to fetch GitHub's public key document from, into --github-keys-file: at start
    /// when the file does not exist yet, then hourly (a failed fetch keeps the file). For an
    /// installation that can reach it: https://api.github.com/meta/public_keys/secret_scanning
    #[arg(
        long,
        env = "KEYWARD_GITHUB_KEYS_URL",
        value_name = "URL",
        requires = "github_keys_file"
    )]
    github_keys_url: Option<String>,

    /// The address people and programs use to reach this server, such as
    /// `https://keys.example.com`. With https, the dashboard's cookies are Secure. Defaults to
    /// `http://` and the listen address.
    #[arg(long, env = "KEYWARD_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,

    /// Password hashes (log-in, sign-up) computed at once, 19 MiB each. Defaults to the
    /// number of cores; more requests wait briefly, then get 503 with Retry-After.
    #[arg(
        long,
        env = "KEYWARD_PASSWORD_HASH_WORKERS",
        value_parser = clap::value_parser!(u16).range(1..=256),
        value_name = "COUNT"
    )]
    password_hash_workers: Option<u16>,

    /// Seconds a client has to send a whole request head: from connecting, for the first
    /// request, and from its first byte for later ones. Slower clients are disconnected.
    #[arg(
        long,
        env = "KEYWARD_HEADER_READ_TIMEOUT_SECONDS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..=3600),
        value_name = "SECONDS"
    )]
    header_read_timeout_seconds: u64,

    /// Seconds a kept-alive connection may stay silent after a response before it is closed,
    /// and a client may read nothing of an answer before its connection is closed.
    /// Keep it above the keep-alive timeout of any proxy in front (nginx: 60 s).
    #[arg(
        long,
        env = "KEYWARD_IDLE_TIMEOUT_SECONDS",
        default_value_t = 75,
        value_parser = clap::value_parser!(u64).range(1..=86400),
        value_name = "SECONDS"
    )]
    idle_timeout_seconds: u64,

    /// Seconds a request may take from its head to its answer, body included; a slower one
    /// gets 408 and its connection is closed.
    #[arg(
        long,
        env = "KEYWARD_REQUEST_TIMEOUT_SECONDS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=3600),
        value_name = "SECONDS"
    )]
    request_timeout_seconds: u64,

    /// Connections open at once; more wait in the listen backlog (and one warning is logged
    /// each time the limit is reached). Defaults to the open-file limit less 128 for the
    /// database and logs, or 1000 where that limit cannot be read.
    #[arg(
        long,
        env = "KEYWARD_MAX_CONNECTIONS",
        value_parser = clap::value_parser!(u32).range(1..),
        value_name = "COUNT"
    )]
    max_connections: Option<u32>,

    /// On SIGTERM or SIGINT, seconds to let in-flight requests finish before the remaining
    /// connections are closed; pending last-use times are then written and the server exits.
    #[arg(
        long,
        env = "KEYWARD_SHUTDOWN_TIMEOUT_SECONDS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(0..=3600),
        value_name = "SECONDS"
    )]
    shutdown_timeout_seconds: u64,

    /// The product's name on every dashboard page and email, instead of "Keyward". In the
    /// configuration file: `[branding] product_name = "Acme Cloud"`.
    #[arg(long, env = "KEYWARD_BRANDING_PRODUCT_NAME", value_name = "NAME")]
    branding_product_name: Option<String>,

    /// The dashboard's accent colour (links, buttons), written #rrggbb; text on it is white
    /// or black, whichever contrasts more. In the configuration file:
    /// `[branding] accent_color = "#0a7d5a"`.
    #[arg(long, env = "KEYWARD_BRANDING_ACCENT_COLOR", value_name = "COLOR",
        value_parser = parse_accent)]
    branding_accent_color: Option<String>,

    /// A logo shown in every page's header (PNG, JPEG, WebP, GIF or SVG, at most 256 KiB),
    /// read at start and served from /assets/logo. In the configuration file:
    /// `[branding] logo_file = "/etc/keyward/logo.svg"`.
    #[arg(long, env = "KEYWARD_BRANDING_LOGO_FILE", value_name = "FILE")]
    branding_logo_file: Option<std::path::PathBuf>,

    /// Origins a portal link's `return_url` may have (comma-separated, such as
    /// https://console.example.com; http only on loopback). Without any, portal links are
    /// refused. In the configuration file: `[portal] return_origins = ["https://…"]`.
    #[arg(
        long,
        env = "KEYWARD_PORTAL_RETURN_ORIGINS",
        value_delimiter = ',',
        value_parser = parse_origin,
        value_name = "ORIGINS"
    )]
    portal_return_origins: Vec<String>,

    /// Origins that may show portal sessions in a frame (CSP frame-ancestors; every other
    /// page may never be framed). Portal cookies are then SameSite=None; Secure; Partitioned.
    /// In the configuration file: `[portal] frame_ancestors = ["https://…"]`.
    #[arg(
        long,
        env = "KEYWARD_PORTAL_FRAME_ANCESTORS",
        value_delimiter = ',',
        value_parser = parse_origin,
        value_name = "ORIGINS"
    )]
    portal_frame_ancestors: Vec<String>,

    /// The longest a portal session lasts, and how long it lasts unless its link says less.
    /// In the configuration file: `[portal] session_minutes = 60`.
    #[arg(
        long,
        env = "KEYWARD_PORTAL_SESSION_MINUTES",
        default_value_t = 60,
        value_parser = clap::value_parser!(u64).range(1..=1440),
        value_name = "MINUTES"
    )]
    portal_session_minutes: u64,

    /// Single sign-on: the OpenID provider's issuer URL (https; http only on loopback).
    /// Its discovery document and keys are read on first use. In the configuration file:
    /// `[oidc] issuer = "https://id.example.com"`, with the other `[oidc]` settings.
    #[arg(long, env = "KEYWARD_OIDC_ISSUER", value_name = "URL", value_parser = parse_issuer)]
    oidc_issuer: Option<String>,

    /// The name on the log-in page's button: "Sign in with NAME".
    #[arg(
        long,
        env = "KEYWARD_OIDC_NAME",
        value_name = "NAME",
        default_value = "single sign-on"
    )]
    oidc_name: String,

    /// Keyward's client id at the provider.
    #[arg(long, env = "KEYWARD_OIDC_CLIENT_ID", value_name = "ID")]
    oidc_client_id: Option<String>,

    /// A file holding Keyward's client secret at the provider (read at start; never logged).
    #[arg(long, env = "KEYWARD_OIDC_CLIENT_SECRET_FILE", value_name = "FILE")]
    oidc_client_secret_file: Option<std::path::PathBuf>,

    /// The ID token claim naming the person's organization(s) by external id (a string or a
    /// list): they become a member of each at every sign-in, and leave those it no longer
    /// names. Without it, memberships are managed in Keyward.
    #[arg(long, env = "KEYWARD_OIDC_ORGANIZATION_CLAIM", value_name = "CLAIM")]
    oidc_organization_claim: Option<String>,

    /// The claim holding the person's role in those organizations: owner, admin or member
    /// (member when absent).
    #[arg(long, env = "KEYWARD_OIDC_ROLE_CLAIM", value_name = "CLAIM")]
    oidc_role_claim: Option<String>,

    /// Whether the log-in page keeps its password form and sign-up; false: single sign-on
    /// only (password log-ins and sign-ups are refused).
    #[arg(
        long,
        env = "KEYWARD_OIDC_PASSWORD_LOGIN",
        value_name = "BOOL",
        num_args = 0..=1,
        default_value_t = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    oidc_password_login: bool,

    /// Email: the SMTP server (host name) that password resets, invitations and expiry and
    /// leak notices go through. Without it, nothing is emailed. In the configuration file:
    /// `[smtp] host = "smtp.example.com"`, with the other `[smtp]` settings.
    #[arg(long, env = "KEYWARD_SMTP_HOST", value_name = "HOST")]
    smtp_host: Option<String>,

    /// The SMTP server's port; 587 for starttls, 465 for tls, 25 for none by default.
    #[arg(long, env = "KEYWARD_SMTP_PORT", value_name = "PORT")]
    smtp_port: Option<u16>,

    /// How the SMTP connection is protected: starttls (required), tls, or none (only for a
    /// relay on the same host).
    #[arg(long, env = "KEYWARD_SMTP_SECURITY", value_name = "MODE", default_value = "starttls",
        value_parser = ["starttls", "tls", "none"])]
    smtp_security: String,

    /// The SMTP user name, if the server asks for one.
    #[arg(long, env = "KEYWARD_SMTP_USERNAME", value_name = "NAME")]
    smtp_username: Option<String>,

    /// A file holding the SMTP password (read at start; never logged).
    #[arg(long, env = "KEYWARD_SMTP_PASSWORD_FILE", value_name = "FILE")]
    smtp_password_file: Option<std::path::PathBuf>,

    /// The sender: `keys@example.com` or `Acme Cloud <keys@example.com>` (the product's
    /// name when it has none).
    #[arg(long, env = "KEYWARD_SMTP_FROM", value_name = "ADDRESS")]
    smtp_from: Option<String>,

    /// Gateway mode: also serve the protected API on this address, forwarding each request
    /// that the route rules allow to `--proxy-upstream`. In the configuration file:
    /// `[proxy] listen = "127.0.0.1:8081"`, with the other `[proxy]` settings.
    #[arg(long, env = "KEYWARD_PROXY_LISTEN", value_name = "ADDR")]
    proxy_listen: Option<SocketAddr>,

    /// The service behind the gateway: `http://host:port`, optionally with a path prefix.
    #[arg(long, env = "KEYWARD_PROXY_UPSTREAM", value_name = "URL",
        value_parser = parse_upstream)]
    proxy_upstream: Option<keyward_server::proxy::Upstream>,

    /// How long the upstream has to accept a connection and send its answer's head
    /// (then 504), and between two parts of an answer's body (then it is cut off).
    #[arg(long, env = "KEYWARD_PROXY_TIMEOUT_SECONDS", value_name = "SECONDS",
        default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    proxy_timeout_seconds: u64,

    /// The largest request body the gateway passes on (then 413).
    #[arg(long, env = "KEYWARD_PROXY_MAX_BODY_BYTES", value_name = "BYTES",
        default_value_t = 10 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    proxy_max_body_bytes: u64,

    /// Pass the client's `Authorization` header on to the upstream (by default it is removed:
    /// the upstream learns who is calling from the `Keyward-*` headers, never the key).
    #[arg(
        long,
        env = "KEYWARD_PROXY_KEEP_AUTHORIZATION",
        value_name = "BOOL",
        num_args = 0..=1,
        default_value_t = false,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    proxy_keep_authorization: bool,

    /// Threads serving the gateway's connections, each with its own event loop and pool of
    /// upstream connections [default: one per CPU].
    #[arg(long, env = "KEYWARD_PROXY_THREADS", value_name = "N",
        value_parser = clap::value_parser!(u16).range(1..=1024))]
    proxy_threads: Option<u16>,

    /// Log filter: a level (`info`) or per-module levels (`info,keyward_server=debug`).
    #[arg(
        long,
        env = "KEYWARD_LOG",
        default_value = "info",
        value_name = "FILTER"
    )]
    log: String,
}

impl ServeArgs {
    /// Options that make sense alone but not together (or not apart): a usage error.
    pub fn mistake(&self) -> Option<&'static str> {
        (self.proxy_listen.is_some() != self.proxy_upstream.is_some()).then_some(
            "gateway mode needs both --proxy-listen and --proxy-upstream ([proxy] listen and \
             upstream)",
        )
    }
}

/// What the platform declares: its scopes (`[[scopes]]`, after Keyward's own) and the route
/// rules of forward authentication (`[[routes]]`).
#[derive(Debug, Default)]
pub struct Platform {
    pub scopes: Arc<keyward_core::ScopeCatalog>,
    pub routes: keyward_core::route::RouteTable,
}

/// Serves with `args` and what the configuration file declares of the platform (see
/// `config::apply`).
pub async fn run(args: ServeArgs, platform: Platform) -> CliResult {
    let Platform { scopes, routes } = platform;
    let filter = Targets::from_str(&args.log)
        .map_err(|error| format!("--log {:?} is not a valid filter: {error}", args.log))?;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .with(filter)
        .init();

    let platform_scopes = scopes.iter().filter(|(_, info)| !info.builtin).count();
    if platform_scopes > 0 {
        tracing::info!(scopes = platform_scopes, "platform scopes defined");
    }
    if !routes.is_empty() {
        tracing::info!(rules = routes.len(), "route rules for /v1/forward-auth");
    }
    let key_file = args
        .webhooks_key_file
        .clone()
        .unwrap_or_else(|| default_key_file(args.database.database_url.expose()));
    let webhook_key = webhook_key(&key_file)?;
    if let (Some(url), Some(file)) = (&args.github_keys_url, &args.github_keys_file)
        && !file.exists()
    {
        keyward_server::secret_scanning::fetch_into(url, file).await?;
    }
    let github_keys = match &args.github_keys_file {
        Some(file) => Some(Arc::new(keyward_server::secret_scanning::GithubKeys::load(
            file.clone(),
        )?)),
        None => None,
    };
    if let (Some(url), Some(file)) = (args.github_keys_url.clone(), args.github_keys_file.clone()) {
        tokio::spawn(keyward_server::secret_scanning::refresh_periodically(
            url,
            file,
            Duration::from_secs(3600),
        ));
    }
    let branding = keyward_server::branding::Branding::new(
        args.branding_product_name.as_deref(),
        args.branding_accent_color.as_deref(),
        args.branding_logo_file.as_deref(),
    )?;
    let oidc = match &args.oidc_issuer {
        None => None,
        Some(issuer) => {
            let (Some(client_id), Some(secret_file)) = (
                args.oidc_client_id.clone(),
                args.oidc_client_secret_file.clone(),
            ) else {
                return Err(
                    "single sign-on needs --oidc-client-id and --oidc-client-secret-file \
                            beside --oidc-issuer ([oidc] client_id and client_secret_file)"
                        .into(),
                );
            };
            let secret = std::fs::read_to_string(&secret_file).map_err(|e| {
                format!(
                    "cannot read the OpenID client secret {}: {e}",
                    secret_file.display()
                )
            })?;
            let settings = keyward_server::oidc::OidcSettings {
                name: args.oidc_name.clone(),
                issuer: issuer.trim_end_matches('/').to_owned(),
                client_id,
                client_secret: secret.trim().to_owned(),
                organization_claim: args.oidc_organization_claim.clone(),
                role_claim: args.oidc_role_claim.clone(),
                password_login: args.oidc_password_login,
            };
            Some(Arc::new(
                keyward_server::oidc::Oidc::new(settings)
                    .map_err(|e| format!("--oidc-issuer: {e}"))?,
            ))
        }
    };
    let smtp = match &args.smtp_host {
        None => None,
        Some(host) => {
            let security = keyward_server::email::Security::parse(&args.smtp_security)?;
            let from = args
                .smtp_from
                .clone()
                .ok_or("email needs a sender: --smtp-from ([smtp] from) beside --smtp-host")?;
            let password = match &args.smtp_password_file {
                None => None,
                Some(file) => Some(
                    std::fs::read_to_string(file)
                        .map_err(|e| {
                            format!("cannot read the SMTP password {}: {e}", file.display())
                        })?
                        .trim_end_matches(['\r', '\n'])
                        .to_owned(),
                ),
            };
            let settings = keyward_server::email::SmtpSettings {
                host: host.clone(),
                port: args.smtp_port.unwrap_or(security.default_port()),
                security,
                username: args.smtp_username.clone(),
                password,
                from,
            };
            Some(Arc::new(
                keyward_server::email::Mailer::new(settings).map_err(|e| format!("[smtp]: {e}"))?,
            ))
        }
    };
    let store = keyward_store::open(args.database.database_url.expose()).await?;
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", args.listen))?;
    let address = listener.local_addr()?;
    let (proxy, proxy_listener) = match (args.proxy_listen, args.proxy_upstream) {
        (Some(listen), Some(upstream)) => {
            let proxy_listener = TcpListener::bind(listen)
                .await
                .map_err(|error| format!("cannot listen on {listen} (--proxy-listen): {error}"))?;
            let proxy = keyward_server::proxy::ProxyConfig {
                upstream,
                timeout: Duration::from_secs(args.proxy_timeout_seconds),
                max_body_bytes: args.proxy_max_body_bytes,
                keep_authorization: args.proxy_keep_authorization,
                threads: args
                    .proxy_threads
                    .map_or_else(keyward_server::proxy::default_threads, usize::from),
            };
            (Some(proxy), Some(proxy_listener))
        }
        // Refused before (`ServeArgs::mistake`).
        _ => (None, None),
    };
    let config = Config {
        brand: args.brand.key_brand,
        usage_flush_interval: Duration::from_secs(args.last_used_flush_seconds),
        audit_retention: Duration::from_secs(args.audit_retention_days * 86_400),
        usage_retention: Duration::from_secs(args.usage_retention_days * 86_400),
        cache_max_age: Duration::from_secs(args.cache_max_age_seconds),
        outage_grace: Duration::from_secs(
            args.outage_grace_seconds
                .unwrap_or(args.cache_max_age_seconds),
        ),
        public_url: args
            .public_url
            .unwrap_or_else(|| format!("http://{address}"))
            .trim_end_matches('/')
            .to_owned(),
        password_limits: password_limits(args.password_hash_workers),
        connection_limits: ConnectionLimits {
            header_read_timeout: Duration::from_secs(args.header_read_timeout_seconds),
            idle_timeout: Duration::from_secs(args.idle_timeout_seconds),
            request_timeout: Duration::from_secs(args.request_timeout_seconds),
            max_connections: args
                .max_connections
                .map_or_else(default_max_connections, |n| n as usize),
            shutdown_timeout: Duration::from_secs(args.shutdown_timeout_seconds),
        },
        scopes,
        routes,
        trusted_proxies: args.trusted_proxies,
        webhook_signing_key: Some(Arc::new(webhook_key)),
        webhooks_allow_private_networks: args.webhooks_allow_private_networks,
        github_keys,
        branding: Arc::new(branding),
        portal: Arc::new(keyward_server::portal::PortalSettings {
            return_origins: args.portal_return_origins,
            frame_ancestors: args.portal_frame_ancestors,
            session_length: Duration::from_secs(args.portal_session_minutes * 60),
        }),
        oidc: oidc.clone(),
        smtp,
        proxy: proxy.clone(),
        ..Config::default()
    };
    if let Some(oidc) = oidc {
        tokio::spawn(async move {
            if let Err(error) = oidc.check().await {
                tracing::warn!(%error, "the OpenID provider cannot be used yet");
            }
        });
    }
    // Listen for SIGTERM before saying we listen: a supervisor may stop us at once.
    let shutdown = shutdown_signal()?;
    tracing::info!("keyward listening on http://{address}");
    if let (Some(proxy), Some(listener)) = (&proxy, &proxy_listener) {
        let gateway = listener.local_addr()?;
        tracing::info!(upstream = %proxy.upstream, "gateway listening on http://{gateway}");
    }
    let state = AppState::new(store.clone(), config);
    tokio::spawn(report_unknown_scopes(state.clone()));
    let served = keyward_server::serve_with_proxy(listener, proxy_listener, state, shutdown).await;
    store.close().await;
    served?;
    tracing::info!("keyward stopped");
    Ok(())
}

/// Says, once at start, how many usable credentials hold each scope the catalog in force does
/// not define (removed from the configuration file): they grant nothing until it is back.
async fn report_unknown_scopes(state: AppState) {
    match keyward_server::services::credentials::unknown_scope_holders(&state).await {
        Ok(unknown) => {
            for (scope, credentials) in unknown {
                tracing::warn!(
                    scope,
                    credentials,
                    "credentials hold a scope the configuration no longer defines; it grants \
                     nothing until it is defined again"
                );
            }
        }
        Err(error) => tracing::warn!(%error, "could not count the holders of unknown scopes"),
    }
}

/// The open-file limit less what the database, logs and listener need; 1000 if unknown.
fn default_max_connections() -> usize {
    const RESERVED: usize = 128;
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse::<usize>().ok()
        })
        .map_or(1_000, |soft| soft.saturating_sub(RESERVED).max(16))
}

/// `webhooks.key` beside an SQLite database; `./keyward-data/webhooks.key` otherwise.
fn default_key_file(database_url: &str) -> std::path::PathBuf {
    database_url
        .strip_prefix("sqlite://")
        .map(|path| path.split('?').next().unwrap_or(path))
        .and_then(|path| {
            std::path::Path::new(path)
                .parent()
                .map(|dir| dir.join("webhooks.key"))
        })
        .unwrap_or_else(|| std::path::PathBuf::from("./keyward-data/webhooks.key"))
}

/// Reads the webhook signing key, or makes one (readable by its owner only) if the file does
/// not exist.
fn webhook_key(file: &std::path::Path) -> Result<SigningKey, String> {
    match std::fs::read_to_string(file) {
        Ok(text) => {
            #[cfg(unix)]
            if let Ok(metadata) = std::fs::metadata(file) {
                let mode = std::os::unix::fs::PermissionsExt::mode(&metadata.permissions());
                if mode & 0o077 != 0 {
                    tracing::warn!(
                        file = %file.display(),
                        "the webhook signing key file is readable by others; chmod 600 it"
                    );
                }
            }
            SigningKey::parse(&text).map_err(|e| format!("{}: {e}", file.display()))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::generate().map_err(|e| e.to_string())?;
            if let Some(dir) = file.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                // Private, like the data directory the store makes (often this one: the key
                // file is made first).
                let mut builder = std::fs::DirBuilder::new();
                builder.recursive(true);
                #[cfg(unix)]
                std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
                builder
                    .create(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut out = match options.open(file) {
                Ok(out) => out,
                // Another node sharing the directory made it first: use that one.
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                    return webhook_key(file);
                }
                Err(error) => return Err(format!("cannot create {}: {error}", file.display())),
            };
            std::io::Write::write_all(&mut out, format!("{}\n", key.to_text().as_str()).as_bytes())
                .and_then(|()| out.sync_all())
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
            tracing::info!(
                file = %file.display(),
                "made a new webhook signing key; with several nodes, give every node this file"
            );
            Ok(key)
        }
        Err(error) => Err(format!("cannot read {}: {error}", file.display())),
    }
}

fn parse_range(text: &str) -> Result<keyward_core::Cidr, String> {
    keyward_core::Cidr::parse(text).map_err(|e| e.to_string())
}

fn parse_issuer(text: &str) -> Result<String, String> {
    keyward_server::oidc::check_url(text).map(|_| text.trim_end_matches('/').to_owned())
}

fn parse_origin(text: &str) -> Result<String, String> {
    keyward_server::portal::parse_origin(text)
}

fn parse_accent(text: &str) -> Result<String, String> {
    keyward_server::branding::Accent::parse(text).map(|_| text.to_owned())
}

fn password_limits(workers: Option<u16>) -> PasswordLimits {
    let default = PasswordLimits::default();
    match workers {
        Some(workers) => PasswordLimits {
            workers: usize::from(workers),
            queue: 8 * usize::from(workers),
            ..default
        },
        None => default,
    }
}

/// Catches SIGINT (Ctrl-C) and SIGTERM from now on; the future completes on either.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down");
    })
}

/// Completes on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    })
}

fn parse_upstream(url: &str) -> Result<keyward_server::proxy::Upstream, String> {
    keyward_server::proxy::Upstream::parse(url)
}
