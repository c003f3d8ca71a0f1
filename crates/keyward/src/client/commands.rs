//! The client's commands, one enum per resource.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::table::{cell, print};
use super::{Client, ClientError, ClientResult};

/// What a new key or token is: its name, scopes and lifetime.
#[derive(Args, Debug)]
pub struct NewCredential {
    /// What the key is for, such as "CI/CD Pipeline".
    #[arg(long)]
    name: String,

    /// A scope to grant (`keyward scopes` lists them); repeat it or separate scopes by commas
    /// (instances:read,projects:read).
    #[arg(
        long = "scope",
        value_delimiter = ',',
        required = true,
        value_name = "SCOPE"
    )]
    scopes: Vec<String>,

    /// When the key stops working, as RFC 3339 (2030-01-31T00:00:00Z).
    #[arg(long, value_name = "TIME", conflicts_with = "expires_in_days")]
    expires_at: Option<String>,

    /// Days from now until the key stops working.
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=3650))]
    expires_in_days: Option<u32>,

    #[command(flatten)]
    networks: AllowCidrs,
}

/// The address ranges a credential may be used from.
#[derive(Args, Debug)]
pub struct AllowCidrs {
    /// An IPv4 or IPv6 range (192.0.2.0/24, 2001:db8::/32) or address the key may be used
    /// from; repeat it or separate ranges by commas. Requests from elsewhere get 403.
    #[arg(long = "allow-cidr", value_delimiter = ',', value_name = "RANGE")]
    ranges: Vec<String>,
}

impl AllowCidrs {
    /// The `allowed_cidrs` field: the ranges, or null for any address.
    fn value(&self) -> Value {
        if self.ranges.is_empty() {
            Value::Null
        } else {
            json!(self.ranges)
        }
    }
}

/// The networks a credential may be used from, changed.
#[derive(Args, Debug)]
pub struct NetworkChange {
    /// An IPv4 or IPv6 range (192.0.2.0/24, 2001:db8::/32) or address it may be used from;
    /// repeat it or separate ranges by commas. Replaces the ranges it had.
    #[arg(
        long = "allow-cidr",
        value_delimiter = ',',
        value_name = "RANGE",
        required_unless_present = "any_address",
        conflicts_with = "any_address"
    )]
    ranges: Vec<String>,
    /// Allow every address again.
    #[arg(long)]
    any_address: bool,
}

impl NewCredential {
    fn body(&self) -> Value {
        let expires_at = match (&self.expires_at, self.expires_in_days) {
            (Some(at), _) => Some(at.clone()),
            (None, Some(days)) => Some(
                keyward_core::Timestamp::now()
                    .plus_seconds(i64::from(days) * 86_400)
                    .to_string(),
            ),
            (None, None) => None,
        };
        json!({
            "name": self.name,
            "scopes": self.scopes,
            "expires_at": expires_at,
            "allowed_cidrs": self.networks.value(),
        })
    }
}

/// Manage the organization's API keys.
#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// List API keys, newest first.
    List {
        /// Every page, not only the first 50.
        #[arg(long)]
        all: bool,
    },
    /// Create an API key; its secret is printed once.
    Create(NewCredential),
    /// Show one API key.
    Show { id: String },
    /// Revoke an API key: immediate and permanent.
    Revoke { id: String },
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
}

/// How long a rotated credential keeps working.
#[derive(Args, Debug)]
pub struct Grace {
    /// Seconds the old key keeps working, 0 (stop at once) to 604800 (seven days).
    #[arg(long, value_name = "SECONDS", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=604_800))]
    grace_seconds: u32,
}

/// Manage projects.
#[derive(Subcommand, Debug)]
pub enum ProjectsCommand {
    /// List projects, newest first.
    List {
        #[arg(long)]
        all: bool,
    },
    /// Create a project.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Delete an empty project; its tokens are revoked with it.
    Delete { id: String },
}

/// Manage one project's tokens.
#[derive(Subcommand, Debug)]
pub enum TokensCommand {
    /// List a project's tokens, newest first.
    List {
        #[arg(long, value_name = "PROJECT_ID")]
        project: String,
        #[arg(long)]
        all: bool,
    },
    /// Create a project token (project-level scopes only); its secret is printed once.
    Create {
        #[arg(long, value_name = "PROJECT_ID")]
        project: String,
        #[command(flatten)]
        credential: NewCredential,
    },
    /// Revoke a project token: immediate and permanent.
    Revoke {
        #[arg(long, value_name = "PROJECT_ID")]
        project: String,
        id: String,
    },
    /// Limit the addresses a project token may be used from (--allow-cidr), or lift the
    /// limit (--any-address); from its next request on.
    Networks {
        #[arg(long, value_name = "PROJECT_ID")]
        project: String,
        id: String,
        #[command(flatten)]
        change: NetworkChange,
    },
    /// Rotate a project token: a new one is printed once; the old one keeps working for the
    /// grace, then is refused as if revoked.
    Rotate {
        #[arg(long, value_name = "PROJECT_ID")]
        project: String,
        id: String,
        #[command(flatten)]
        grace: Grace,
    },
}

/// Read instances.
#[derive(Subcommand, Debug)]
pub enum InstancesCommand {
    /// List instances, newest first, optionally of one project.
    List {
        #[arg(long, value_name = "PROJECT_ID")]
        project: Option<String>,
        #[arg(long)]
        all: bool,
    },
}

const ROLES: [&str; 3] = ["owner", "admin", "member"];

/// Manage the organization's members (the key needs `members:read` or `members:write`).
#[derive(Subcommand, Debug)]
pub enum MembersCommand {
    /// List members, owners first.
    List,
    /// Add a person who has signed up, by email. A key adds members only (not admins or
    /// owners), and only when it does not expire and holds every scope a member may grant.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long, value_parser = ROLES)]
        role: String,
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
            let added = client
                .call(
                    Method::POST,
                    "/v1/members",
                    Some(json!({ "email": email, "role": role })),
                )
                .await?;
            client.print(&added, |added| print(&columns, &[row(added)]));
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

/// Ids go into URL paths: refuse anything but the characters ids are made of.
fn id(raw: &str) -> Result<&str, ClientError> {
    if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(raw)
    } else {
        Err(ClientError::Usage(format!(
            "{raw:?} is not an id such as key_01h455vb4pex5vsknk084sn02q"
        )))
    }
}

const CREDENTIAL_COLUMNS: [&str; 9] = [
    "ID",
    "NAME",
    "KEY",
    "SCOPES",
    "CREATED",
    "LAST USED",
    "EXPIRES",
    "STATUS",
    "NETWORKS",
];

fn credential_row(item: &Value) -> Vec<String> {
    let mut row: Vec<String> = [
        "id",
        "name",
        "hint",
        "scopes",
        "created_at",
        "last_used_at",
        "expires_at",
        "status",
        "allowed_cidrs",
    ]
    .iter()
    .map(|field| cell(&item[field]))
    .collect();
    // Scopes the server no longer defines grant nothing: say so next to the others.
    let unknown: Vec<String> = item["unknown_scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|name| format!("{name}(unknown)"))
        .collect();
    if !unknown.is_empty() {
        let scopes = &mut row[3];
        scopes.extend([",", &unknown.join(",")]);
    }
    row
}

fn print_list(
    client: &Client,
    items: Vec<Value>,
    more: bool,
    headers: &[&str],
    row: fn(&Value) -> Vec<String>,
) {
    let json = json!({ "data": items });
    client.print(&json, |_| {
        print(headers, &items.iter().map(row).collect::<Vec<_>>());
        if more {
            println!("(more: add --all to list every page)");
        }
    });
}

fn print_created(client: &Client, created: &Value, what: &str) {
    client.print(created, |created| {
        println!(
            "Created {what} {:?} ({}). It is shown once; store it now:",
            created["name"].as_str().unwrap_or_default(),
            cell(&created["id"])
        );
        println!();
        println!("    {}", created["key"].as_str().unwrap_or_default());
        println!();
        println!("Keep it in an environment variable or a secret manager, never in code.");
    });
}

pub async fn keys(client: &Client, command: KeysCommand) -> ClientResult {
    match command {
        KeysCommand::List { all } => {
            let (items, more) = client.list("/v1/api-keys", all).await?;
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
    }
    Ok(())
}

/// Sets or lifts a credential's network rules, and shows the credential.
async fn change_networks(client: &Client, path: &str, change: &NetworkChange) -> ClientResult {
    let ranges = (!change.any_address).then_some(&change.ranges);
    let body = json!({ "allowed_cidrs": ranges });
    let updated = client.call(Method::PATCH, path, Some(body)).await?;
    client.print(&updated, |item| {
        print(&CREDENTIAL_COLUMNS, &[credential_row(item)]);
    });
    Ok(())
}

/// The new credential of a rotation, once, and when the old one stops.
fn print_rotated(client: &Client, created: &Value, what: &str, old: &str, grace: u32) {
    print_created(client, created, what);
    if !client.json {
        if grace == 0 {
            println!("{old} stopped working now.");
        } else {
            println!("{old} keeps working for {grace} seconds, then stops for good.");
        }
    }
}

pub async fn projects(client: &Client, command: ProjectsCommand) -> ClientResult {
    match command {
        ProjectsCommand::List { all } => {
            let (items, more) = client.list("/v1/projects", all).await?;
            print_list(
                client,
                items,
                more,
                &["ID", "NAME", "CREATED", "DESCRIPTION"],
                |p| {
                    ["id", "name", "created_at", "description"]
                        .iter()
                        .map(|f| cell(&p[f]))
                        .collect()
                },
            );
        }
        ProjectsCommand::Create { name, description } => {
            let body = json!({ "name": name, "description": description });
            let created = client
                .call(Method::POST, "/v1/projects", Some(body))
                .await?;
            client.print(&created, |p| {
                println!(
                    "Created project {:?} ({}).",
                    cell(&p["name"]),
                    cell(&p["id"])
                )
            });
        }
        ProjectsCommand::Delete { id: raw } => {
            let id = id(&raw)?;
            client
                .call(Method::DELETE, &format!("/v1/projects/{id}"), None)
                .await?;
            client.print(&json!({ "id": id, "deleted": true }), |_| {
                println!("Deleted {id}; its project tokens are revoked.");
            });
        }
    }
    Ok(())
}

pub async fn tokens(client: &Client, command: TokensCommand) -> ClientResult {
    match command {
        TokensCommand::List { project, all } => {
            let path = format!("/v1/projects/{}/tokens", id(&project)?);
            let (items, more) = client.list(&path, all).await?;
            print_list(client, items, more, &CREDENTIAL_COLUMNS, credential_row);
        }
        TokensCommand::Create {
            project,
            credential,
        } => {
            let path = format!("/v1/projects/{}/tokens", id(&project)?);
            let created = client
                .call(Method::POST, &path, Some(credential.body()))
                .await?;
            print_created(client, &created, "project token");
        }
        TokensCommand::Revoke { project, id: raw } => {
            let (project, id) = (id(&project)?, id(&raw)?);
            client
                .call(
                    Method::DELETE,
                    &format!("/v1/projects/{project}/tokens/{id}"),
                    None,
                )
                .await?;
            client.print(&json!({ "id": id, "revoked": true }), |_| {
                println!("Revoked {id}: applications using it have lost access.");
            });
        }
        TokensCommand::Networks {
            project,
            id: raw,
            change,
        } => {
            let path = format!("/v1/projects/{}/tokens/{}", id(&project)?, id(&raw)?);
            change_networks(client, &path, &change).await?;
        }
        TokensCommand::Rotate {
            project,
            id: raw,
            grace,
        } => {
            let (project, id) = (id(&project)?, id(&raw)?);
            let created = client
                .call(
                    Method::POST,
                    &format!("/v1/projects/{project}/tokens/{id}/rotate"),
                    Some(json!({ "grace_seconds": grace.grace_seconds })),
                )
                .await?;
            print_rotated(client, &created, "project token", id, grace.grace_seconds);
        }
    }
    Ok(())
}

pub async fn instances(client: &Client, command: InstancesCommand) -> ClientResult {
    match command {
        InstancesCommand::List { project, all } => {
            let path = match &project {
                Some(project) => format!("/v1/instances?project_id={}", id(project)?),
                None => "/v1/instances".to_owned(),
            };
            let (items, more) = client.list(&path, all).await?;
            print_list(
                client,
                items,
                more,
                &["ID", "NAME", "PROJECT", "REGION", "STATUS", "CREATED"],
                |i| {
                    ["id", "name", "project_id", "region", "status", "created_at"]
                        .iter()
                        .map(|f| cell(&i[f]))
                        .collect()
                },
            );
        }
    }
    Ok(())
}

/// Lists the scopes a key may be granted on the server: Keyward's own and the platform's.
pub async fn scopes(client: &Client) -> ClientResult {
    let catalog = client.get("/v1/scopes").await?;
    client.print(&catalog, |catalog| {
        let rows: Vec<Vec<String>> = catalog["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|scope| {
                ["name", "level", "min_role", "description"]
                    .iter()
                    .map(|field| cell(&scope[field]))
                    .collect()
            })
            .collect();
        print(&["SCOPE", "LEVEL", "LEAST ROLE", "DESCRIPTION"], &rows);
    });
    Ok(())
}

pub async fn whoami(client: &Client) -> ClientResult {
    let me = client.get("/v1/me").await?;
    client.print(&me, |me| {
        print(
            &[
                "ID",
                "KIND",
                "NAME",
                "ORGANIZATION",
                "PROJECT",
                "SCOPES",
                "EXPIRES",
            ],
            &[[
                "id",
                "kind",
                "name",
                "organization_id",
                "project_id",
                "scopes",
                "expires_at",
            ]
            .iter()
            .map(|f| cell(&me[f]))
            .collect()],
        );
    });
    Ok(())
}

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
