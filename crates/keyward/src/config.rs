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

use clap::ArgMatches;
use clap::parser::ValueSource;
use keyward_core::route::{RouteRule, RouteTable};

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

/// The settings of a configuration file, checked against `keyward serve`'s options, and its
/// route rules.
#[derive(Debug)]
pub struct Settings {
    pub settings: Vec<Setting>,
    pub routes: RouteTable,
}

/// The fields a `[[routes]]` table may have.
const ROUTE_FIELDS: [&str; 4] = ["methods", "path", "scopes", "project"];

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

/// One `[[routes]]` table.
fn route(table: &toml::Table) -> Result<RouteRule, String> {
    if let Some(unknown) = table.keys().find(|k| !ROUTE_FIELDS.contains(&k.as_str())) {
        return Err(format!(
            "unknown route field `{unknown}` (a route has methods, path, scopes and project)"
        ));
    }
    let methods = match table.get("methods") {
        Some(value) => strings(value, "methods")?,
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
    RouteRule::parse(&methods, path, &scopes, project).map_err(|e| e.to_string())
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

    let options = serve_options();
    let mut settings = Vec::new();
    let mut routes = RouteTable::default();
    for (key, value) in &table {
        let line = line_of_key(key);
        if key == "routes" {
            routes = route_table(value, &spans, &line_of).map_err(|(line, message)| {
                error(Some(line.unwrap_or_else(|| line_of_key(key))), message)
            })?;
            continue;
        }
        let known = options
            .get_arguments()
            .any(|arg| arg.get_id().as_str() == key && settable(key));
        if !known {
            return Err(error(
                Some(line),
                format!("unknown setting `{key}` (see `keyward serve --help` for the options)"),
            ));
        }
        let value = match value {
            toml::Value::String(text) => text.clone(),
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
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
    Ok(Settings { settings, routes })
}

/// The `[[routes]]` array: each table a rule, in order; errors at the line of their table.
fn route_table(
    value: &toml::Value,
    spans: &toml::Spanned<toml::de::DeTable<'_>>,
    line_of: &dyn Fn(usize) -> usize,
) -> Result<RouteTable, (Option<usize>, String)> {
    let shape = || {
        (
            None,
            "`routes` is a list of tables: write each as [[routes]]".to_owned(),
        )
    };
    let tables = value.as_array().ok_or_else(shape)?;
    let lines: Vec<Option<usize>> = match spans.get_ref().get("routes").map(|v| v.get_ref()) {
        Some(toml::de::DeValue::Array(items)) => items
            .iter()
            .map(|item| Some(line_of(item.span().start)))
            .collect(),
        _ => Vec::new(),
    };
    let line = |index: usize| lines.get(index).copied().flatten();
    let mut rules = Vec::with_capacity(tables.len());
    for (index, table) in tables.iter().enumerate() {
        let table = table.as_table().ok_or_else(shape)?;
        rules.push(route(table).map_err(|message| (line(index), message))?);
    }
    RouteTable::new(rules).map_err(|(index, error)| (line(index), error.to_string()))
}

/// The file `keyward serve` reads: the one `--config` or `KEYWARD_CONFIG` names, or else
/// `./keyward.toml` if it exists.
fn file_for(serve: &ArgMatches) -> Option<PathBuf> {
    match serve.get_one::<PathBuf>("config") {
        Some(named) => Some(named.clone()),
        None => Path::new(DEFAULT_FILE)
            .is_file()
            .then(|| PathBuf::from(DEFAULT_FILE)),
    }
}

/// The command line to run `keyward serve` with (`args`, plus the file's settings for every
/// option that neither a flag nor an environment variable set), and the file's route rules.
pub fn apply(
    args: Vec<OsString>,
    serve: &ArgMatches,
) -> Result<(Vec<OsString>, RouteTable), ConfigError> {
    let Some(file) = file_for(serve) else {
        return Ok((args, RouteTable::default()));
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
    Ok((combined, settings.routes))
}
