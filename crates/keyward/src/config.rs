//! The configuration file of `keyward serve`: `--config FILE` (or `KEYWARD_CONFIG`), or
//! `./keyward.toml` when it exists.
//!
//! Every option of `keyward serve` can be set in it, under its long name in snake case
//! (`--cache-max-age-seconds 30` is `cache_max_age_seconds = 30`). A flag on the command
//! line, then an environment variable, wins over the file. A mistake is reported in one line
//! naming the file, the line and the problem, and `keyward` exits with status 2.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::ArgMatches;
use clap::parser::ValueSource;
use keyward_core::route::{RouteRule, RouteTable};
use keyward_core::{Role, ScopeCatalog, ScopeDefinition, ScopeLevel};

use crate::serve::Platform;

/// The file read when neither `--config` nor `KEYWARD_CONFIG` names one.
pub const DEFAULT_FILE: &str = "keyward.toml";

/// What is wrong with a configuration file, at which line if known.
#[derive(Debug)]
pub struct ConfigError {
    file: PathBuf,
    line: Option<usize>,
    message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// One setting from the file: the `serve` option and its value as a flag takes it.
#[derive(Debug)]
pub struct Setting {
    pub id: String,
    pub value: String,
}

/// The settings of a configuration file, checked against `keyward serve`'s options, and what
/// it declares of the platform.
#[derive(Debug)]
pub struct Settings {
    pub settings: Vec<Setting>,
    pub platform: Platform,
}

/// The fields a `[[routes]]` table may have.
const ROUTE_FIELDS: [&str; 6] = ["methods", "path", "scopes", "project", "name", "cost"];
/// The fields a `[[scopes]]` table may have.
const SCOPE_FIELDS: [&str; 4] = ["name", "description", "level", "min_role"];

/// A list of strings, or why not.
fn strings(value: &toml::Value, what: &str) -> Result<Vec<String>, String> {
    let refused = || format!("`{what}` takes a list of strings");
    value
        .as_array()
        .ok_or_else(refused)?
        .iter()
        .map(|item| item.as_str().map(str::to_owned).ok_or_else(refused))
        .collect()
}

/// A string field, or why not.
fn text<'t>(table: &'t toml::Table, field: &str) -> Result<Option<&'t str>, String> {
    match table.get(field) {
        None => Ok(None),
        Some(value) => value
            .as_str()
            .map(Some)
            .ok_or_else(|| format!("`{field}` takes a string")),
    }
}

/// One `[[scopes]]` table.
fn scope(table: &toml::Table) -> Result<ScopeDefinition, String> {
    if let Some(unknown) = table.keys().find(|k| !SCOPE_FIELDS.contains(&k.as_str())) {
        return Err(format!(
            "unknown scope field `{unknown}` (a scope has name, description, level and min_role)"
        ));
    }
    let name = text(table, "name")?.ok_or("a scope needs a `name` (resource:action)")?;
    let description = text(table, "description")?
        .ok_or_else(|| format!("the scope {name} needs a `description`"))?;
    let level = match text(table, "level")? {
        None => None,
        Some("project") => Some(ScopeLevel::Project),
        Some("organization") => Some(ScopeLevel::Organization),
        Some(other) => {
            return Err(format!(
                "`level = {other:?}`: a scope's level is \"project\" or \"organization\""
            ));
        }
    };
    let min_role = match text(table, "min_role")? {
        None => None,
        Some(raw) => Some(Role::from_storage(raw).ok_or_else(|| {
            format!("`min_role = {raw:?}`: a role is \"member\", \"admin\" or \"owner\"")
        })?),
    };
    Ok(ScopeDefinition {
        name: name.to_owned(),
        description: description.to_owned(),
        level,
        min_role,
    })
}

/// One `[[routes]]` table.
fn route(table: &toml::Table, catalog: &ScopeCatalog) -> Result<RouteRule, String> {
    if let Some(unknown) = table.keys().find(|k| !ROUTE_FIELDS.contains(&k.as_str())) {
        return Err(format!(
            "unknown route field `{unknown}` (a route has methods, path, scopes, project, \
             name and cost)"
        ));
    }
    let methods = match table.get("methods") {
        Some(value) => match strings(value, "methods")? {
            // Not "any method", which is what leaving it out says: a mistake either way.
            none if none.is_empty() => {
                return Err(
                    "`methods = []` names no method; leave `methods` out for any method".into(),
                );
            }
            methods => methods,
        },
        None => Vec::new(),
    };
    let path = table
        .get("path")
        .ok_or("a route needs a `path`")?
        .as_str()
        .ok_or("`path` takes a string")?;
    let scopes = match table.get("scopes") {
        Some(value) => strings(value, "scopes")?,
        None => return Err("a route needs `scopes` (`[]` for any valid key)".into()),
    };
    let project = match table.get("project") {
        Some(value) => Some(value.as_str().ok_or("`project` takes a string")?),
        None => None,
    };
    let cost = match table.get("cost") {
        None => None,
        Some(value) => Some(value.as_integer().ok_or("`cost` takes a whole number")?),
    };
    let mut rule = RouteRule::parse(&methods, path, &scopes, project, catalog);
    if let Some(name) = text(table, "name")? {
        rule = rule.and_then(|rule| rule.named(name));
    }
    if let Some(cost) = cost {
        rule = rule.and_then(|rule| rule.costing(cost));
    }
    rule.map_err(|e| e.to_string())
}

/// The options a file may set: every option of `keyward serve` but the file itself.
fn serve_options() -> clap::Command {
    <crate::serve::ServeArgs as clap::Args>::augment_args(clap::Command::new("serve"))
}

fn settable(id: &str) -> bool {
    id != "config" && id != "help" && id != "version"
}

/// Reads and checks `file`.
pub fn load(file: &Path) -> Result<Settings, ConfigError> {
    let error = |line: Option<usize>, message: String| ConfigError {
        file: file.to_owned(),
        line,
        message,
    };
    let text = std::fs::read_to_string(file)
        .map_err(|e| error(None, format!("cannot read the configuration file: {e}")))?;
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        let line = e.span().map(|span| line_of(span.start));
        error(line, e.message().trim_end().to_owned())
    })?;
    // The same text again, for the line of each key.
    let spans = toml::de::DeTable::parse(&text)
        .map_err(|e| error(None, e.message().trim_end().to_owned()))?;
    let line_of_key = |key: &str| {
        spans
            .get_ref()
            .iter()
            .find(|(name, _)| name.get_ref().as_ref() == key)
            .map_or(1, |(name, _)| line_of(name.span().start))
    };

    // An error at its own line if known, else at the line of `key`.
    let at_line = |key: &str, (line, message): LineError| {
        error(Some(line.unwrap_or_else(|| line_of_key(key))), message)
    };
    // The scopes first: the routes name them.
    let scopes = match table.get("scopes") {
        Some(value) => {
            let definitions = tables_of(value, "scopes", &spans, &line_of, scope)
                .map_err(|e| at_line("scopes", e))?;
            let catalog = ScopeCatalog::new(
                &definitions
                    .iter()
                    .map(|(_, definition)| definition.clone())
                    .collect::<Vec<_>>(),
            )
            .map_err(|refused| {
                let line = definitions.get(refused.index).and_then(|(line, _)| *line);
                at_line("scopes", (line, refused.message))
            })?;
            Arc::new(catalog)
        }
        None => Arc::default(),
    };
    let options = serve_options();
    let mut settings = Vec::new();
    let mut routes = RouteTable::default();
    // `[webhooks] allow_private_networks = true` is the option `webhooks_allow_private_networks`.
    let mut entries: Vec<(String, &toml::Value, usize)> = Vec::new();
    for (key, value) in &table {
        match (key.as_str(), value) {
            // `[branding] product_name = "…"` is the option `branding_product_name`, and so
            // for every section whose options carry its name.
            (
                "webhooks" | "branding" | "portal" | "oidc" | "smtp" | "proxy",
                toml::Value::Table(section),
            ) => {
                for (name, value) in section {
                    entries.push((format!("{key}_{name}"), value, line_of_key(key)));
                }
            }
            // `[secret_scanning] github_keys_file = "…"` is the option `github_keys_file`.
            ("secret_scanning", toml::Value::Table(section)) => {
                for (name, value) in section {
                    entries.push((name.clone(), value, line_of_key(key)));
                }
            }
            _ => entries.push((key.clone(), value, line_of_key(key))),
        }
    }
    for (key, value, line) in entries {
        let key = &key;
        if key == "scopes" {
            continue;
        }
        if key == "routes" {
            let rules = tables_of(value, "routes", &spans, &line_of, |table| {
                route(table, &scopes)
            })
            .map_err(|e| at_line(key, e))?;
            let lines: Vec<Option<usize>> = rules.iter().map(|(line, _)| *line).collect();
            routes = RouteTable::new(rules.into_iter().map(|(_, rule)| rule).collect()).map_err(
                |(index, refused)| {
                    at_line(
                        key,
                        (lines.get(index).copied().flatten(), refused.to_string()),
                    )
                },
            )?;
            continue;
        }
        let argument = options
            .get_arguments()
            .find(|arg| arg.get_id().as_str() == key && settable(key));
        let Some(argument) = argument else {
            return Err(error(
                Some(line),
                format!("unknown setting `{key}` (see `keyward serve --help` for the options)"),
            ));
        };
        let takes_a_list = argument.get_value_delimiter().is_some();
        let value = match value {
            toml::Value::String(text) => text.clone(),
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            // A list option (`trusted_proxies = ["10.0.0.0/8", "127.0.0.1"]`), as it is
            // written on the command line.
            toml::Value::Array(_) if takes_a_list => strings(value, key)
                .map_err(|message| error(Some(line), message))?
                .join(","),
            _ => {
                return Err(error(
                    Some(line),
                    format!("`{key}` takes a string or a whole number"),
                ));
            }
        };
        // Check the value exactly as the option on the command line would be checked.
        let flag = format!("--{}={value}", key.replace('_', "-"));
        if let Err(refused) = options
            .clone()
            .no_binary_name(true)
            .try_get_matches_from([flag])
        {
            let said = refused.render().to_string();
            let first = said.lines().next().unwrap_or_default();
            let reason = first.strip_prefix("error: ").unwrap_or(first);
            return Err(error(Some(line), format!("`{key}`: {reason}")));
        }
        settings.push(Setting {
            id: key.clone(),
            value,
        });
    }
    Ok(Settings {
        settings,
        platform: Platform { scopes, routes },
    })
}

/// A problem, at the line of the table it is in when known.
type LineError = (Option<usize>, String);

/// An array of tables (`[[key]]`), each read by `read`, in order, with the line of each
/// table; errors at the line of their table.
fn tables_of<T>(
    value: &toml::Value,
    key: &str,
    spans: &toml::Spanned<toml::de::DeTable<'_>>,
    line_of: &dyn Fn(usize) -> usize,
    read: impl Fn(&toml::Table) -> Result<T, String>,
) -> Result<Vec<(Option<usize>, T)>, LineError> {
    let shape = || {
        (
            None,
            format!("`{key}` is a list of tables: write each as [[{key}]]"),
        )
    };
    let tables = value.as_array().ok_or_else(shape)?;
    let lines: Vec<Option<usize>> = match spans.get_ref().get(key).map(|v| v.get_ref()) {
        Some(toml::de::DeValue::Array(items)) => items
            .iter()
            .map(|item| Some(line_of(item.span().start)))
            .collect(),
        _ => Vec::new(),
    };
    let mut read_all = Vec::with_capacity(tables.len());
    for (index, table) in tables.iter().enumerate() {
        let line = lines.get(index).copied().flatten();
        let table = table.as_table().ok_or_else(shape)?;
        read_all.push((line, read(table).map_err(|message| (line, message))?));
    }
    Ok(read_all)
}

/// The file to read: the one `--config` or `KEYWARD_CONFIG` names, or else `./keyward.toml`
/// if it exists.
fn file_or_default(named: Option<&Path>) -> Option<PathBuf> {
    match named {
        Some(named) => Some(named.to_owned()),
        None => Path::new(DEFAULT_FILE)
            .is_file()
            .then(|| PathBuf::from(DEFAULT_FILE)),
    }
}

/// The command line to run `keyward serve` with (`args`, plus the file's settings for every
/// option that neither a flag nor an environment variable set), and what the file declares
/// of the platform.
pub fn apply(
    args: Vec<OsString>,
    serve: &ArgMatches,
) -> Result<(Vec<OsString>, Platform), ConfigError> {
    let named = serve.get_one::<PathBuf>("config");
    let Some(file) = file_or_default(named.map(PathBuf::as_path)) else {
        return Ok((args, Platform::default()));
    };
    let settings = load(&file)?;
    let from_file = settings.settings.into_iter().filter(|setting| {
        !matches!(
            serve.value_source(&setting.id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    });
    let flags: Vec<OsString> = from_file
        .map(|setting| format!("--{}={}", setting.id.replace('_', "-"), setting.value).into())
        .collect();
    // Right after `serve`, so that they are `serve`'s options.
    let at = args
        .iter()
        .position(|arg| arg == "serve")
        .map_or(args.len(), |i| i + 1);
    let mut combined = args;
    combined.splice(at..at, flags);
    Ok((combined, settings.platform))
}

/// The scope catalog of the configuration file `named` (or `./keyward.toml` if it exists),
/// for commands other than `serve` that create credentials.
pub fn catalog(named: Option<&Path>) -> Result<Arc<ScopeCatalog>, ConfigError> {
    match file_or_default(named) {
        Some(file) => Ok(load(&file)?.platform.scopes),
        None => Ok(Arc::default()),
    }
}
