//! Route rules: which scopes a request to the platform needs, for forward authentication.
//!
//! A rule names methods (or any), a path pattern, the scopes a key must all hold, and
//! optionally where the request names its project (a captured path segment, or a header), which
//! a project token must match. Patterns are literal segments, `{name}` for any one segment,
//! and a trailing `*` for any rest (none included). The first rule that matches decides.

use std::fmt;
use std::sync::Arc;

use crate::{ScopeCatalog, ScopeSet};

/// One segment of a path pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Capture(String),
    /// `*`, last: any number of segments, none included.
    Rest,
}

/// A path pattern such as `/v1/databases/{project_id}/*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathPattern {
    text: String,
    segments: Vec<Segment>,
}

/// Why a rule was refused; shown as is, after the file and line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RuleError(pub String);

fn refuse(message: impl Into<String>) -> RuleError {
    RuleError(message.into())
}

/// Whether a request's path carries `byte` as it is (RFC 3986 `pchar` but `%`, and `;`
/// and `*`, which patterns refuse or use): anything else arrives percent-encoded, and a
/// literal holding it could never match. Forward authentication, for its part, refuses a
/// path that percent-encodes one of these (`%3A` for `:`), which would slip past a literal
/// that names it as is.
pub fn in_a_path_as_is(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(
            byte,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'+'
                | b','
                | b'='
                | b':'
                | b'@'
        )
}

/// Whether `name` may name the header a project comes in: an HTTP field name (RFC 9110 token),
/// without `_`, which nginx drops by default and the shipped Caddyfile drops too (CGI-style
/// servers would read it as `-`).
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

impl PathPattern {
    pub fn parse(text: &str) -> Result<Self, RuleError> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(refuse(format!("the path {text:?} must start with /")));
        };
        let parts: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        let mut segments = Vec::with_capacity(parts.len());
        for (index, part) in parts.iter().enumerate() {
            let segment = if *part == "*" {
                if index + 1 != parts.len() {
                    return Err(refuse(format!(
                        "in the path {text:?}, * may only end the path"
                    )));
                }
                Segment::Rest
            } else if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                if !valid {
                    return Err(refuse(format!(
                        "in the path {text:?}, {{{name}}} is not a valid name: lowercase letters, \
                         digits and _, starting with a letter"
                    )));
                }
                if segments
                    .iter()
                    .any(|s| matches!(s, Segment::Capture(other) if other == name))
                {
                    return Err(refuse(format!(
                        "in the path {text:?}, {{{name}}} is captured twice"
                    )));
                }
                Segment::Capture(name.to_owned())
            } else if part.is_empty()
                || *part == "."
                || *part == ".."
                || part.contains(['{', '}', '*', '?', '#', '%', ';', '\\'])
            {
                return Err(refuse(format!(
                    "in the path {text:?}, the segment {part:?} is not valid"
                )));
            } else if !part.bytes().all(in_a_path_as_is) {
                return Err(refuse(format!(
                    "in the path {text:?}, the segment {part:?} could never match: requests \
                     carry it percent-encoded; write literal segments with ASCII letters, digits \
                     and - . _ ~ ! $ & ' ( ) + , = : @ only"
                )));
            } else {
                Segment::Literal((*part).to_owned())
            };
            segments.push(segment);
        }
        Ok(Self {
            text: text.to_owned(),
            segments,
        })
    }

    fn captures(&self, name: &str) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, Segment::Capture(n) if n == name))
    }

    /// The captured segments, if `path` (without its query) matches.
    fn matches<'p>(&self, path: &'p str) -> Option<Vec<(&str, &'p str)>> {
        let rest = path.strip_prefix('/')?;
        // Segment by segment, without collecting them (this runs for every request a gateway
        // asks about): `/` has none.
        let mut parts = (!rest.is_empty())
            .then(|| rest.split('/'))
            .into_iter()
            .flatten();
        let mut captured = Vec::new();
        for segment in &self.segments {
            let part = parts.next();
            match segment {
                // Last by construction: whatever follows matches.
                Segment::Rest => return Some(captured),
                Segment::Literal(literal) if part == Some(literal.as_str()) => {}
                Segment::Capture(name) if part.is_some_and(|p| !p.is_empty()) => {
                    captured.push((name.as_str(), part?));
                }
                _ => return None,
            }
        }
        parts.next().is_none().then_some(captured)
    }

    /// Whether every path `other` matches, this matches too.
    fn covers(&self, other: &PathPattern) -> bool {
        let mut theirs = other.segments.iter();
        for mine in &self.segments {
            match (mine, theirs.next()) {
                (Segment::Rest, _) => return true,
                (_, None | Some(Segment::Rest)) => return false,
                (Segment::Capture(_), Some(_)) => {}
                (Segment::Literal(a), Some(Segment::Literal(b))) if a == b => {}
                (Segment::Literal(_), Some(_)) => return false,
            }
        }
        theirs.next().is_none()
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Where a request names its project.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProjectSource {
    /// A segment captured by the path pattern.
    Capture(String),
    /// A request header.
    Header(String),
}

/// One rule, as written in the configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteRule {
    /// Upper-case method names; empty for any method.
    pub methods: Vec<String>,
    pub path: PathPattern,
    /// The key must hold every one; none means any valid key. Positions in the catalog the
    /// rule was parsed or last bound with (see [`RouteTable::bound_to`]).
    pub scopes: ScopeSet,
    /// The same scopes by name, as written.
    pub scope_names: Vec<String>,
    /// False when the catalog it is bound to lacks one of its scopes: then it refuses every
    /// request it matches.
    pub satisfiable: bool,
    pub project: Option<ProjectSource>,
    /// The name usage is counted under (`None`: counted with no route).
    pub name: Option<Arc<str>>,
    /// The credits a request it allows spends (1 unless the rule says otherwise).
    pub cost: i64,
}

/// The longest route name.
const NAME_MAX: usize = 64;
/// The most credits a route may cost.
pub const MAX_COST: i64 = 1_000_000;

impl RouteRule {
    /// The same rule, spending `cost` credits (0 to 1,000,000) of each request it allows.
    pub fn costing(self, cost: i64) -> Result<Self, RuleError> {
        if !(0..=MAX_COST).contains(&cost) {
            return Err(refuse(format!(
                "`cost = {cost}`: a route's cost is 0 to {MAX_COST} credits"
            )));
        }
        Ok(Self { cost, ..self })
    }

    /// The same rule, counted in usage under `name`: 1 to 64 lowercase letters, digits, `-`,
    /// `_` and `.`, starting with a letter. Several rules may share a name (one resource's
    /// reads and writes, say).
    pub fn named(self, name: &str) -> Result<Self, RuleError> {
        let valid = name.len() <= NAME_MAX
            && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
        if !valid {
            return Err(refuse(format!(
                "`name = {name:?}`: a route's name is 1 to {NAME_MAX} lowercase letters, digits, \
                 - _ and ., starting with a letter"
            )));
        }
        Ok(Self {
            name: Some(Arc::from(name)),
            ..self
        })
    }

    /// Checks a rule as written: `methods`, `path`, `scopes` by name (in `catalog`), `project`
    /// (a captured name, or `header:NAME`).
    pub fn parse(
        methods: &[String],
        path: &str,
        scopes: &[String],
        project: Option<&str>,
        catalog: &ScopeCatalog,
    ) -> Result<Self, RuleError> {
        let path = PathPattern::parse(path)?;
        let methods = methods
            .iter()
            .map(|method| {
                let upper = method.to_ascii_uppercase();
                if upper.is_empty() || !upper.bytes().all(|b| b.is_ascii_uppercase()) {
                    Err(refuse(format!("{method:?} is not an HTTP method")))
                } else {
                    Ok(upper)
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let scopes_written = scopes;
        let scopes = catalog
            .parse(scopes)
            .map_err(|unknown| refuse(format!("unknown scope {:?}", unknown.0)))?;
        let project = match project {
            None => None,
            Some(source) => Some(match source.strip_prefix("header:") {
                Some(header) if is_header_name(header) => {
                    ProjectSource::Header(header.to_ascii_lowercase())
                }
                Some("") => return Err(refuse("`project = \"header:\"` needs a header name")),
                Some(header) => {
                    return Err(refuse(format!(
                        "`project = \"header:{header}\"`: {header:?} is not a header name \
                         (letters, digits and - ! # $ % & ' * + . ^ ` | ~; no spaces, and no _, \
                         which gateways drop)"
                    )));
                }
                None if path.captures(source) => ProjectSource::Capture(source.to_owned()),
                None => {
                    return Err(refuse(format!(
                        "`project = {source:?}` is neither a segment the path captures nor \
                         header:NAME"
                    )));
                }
            }),
        };
        Ok(Self {
            methods,
            path,
            scopes,
            scope_names: scopes_written.to_vec(),
            satisfiable: true,
            project,
            name: None,
            cost: 1,
        })
    }

    /// A rule for GET covers HEAD, which servers answer as GET without the body.
    fn allows_method(&self, method: &str) -> bool {
        self.methods.is_empty()
            || self
                .methods
                .iter()
                .any(|m| m == method || (method == "HEAD" && m == "GET"))
    }

    fn covers(&self, other: &RouteRule) -> bool {
        let methods = self.methods.is_empty()
            || (!other.methods.is_empty() && other.methods.iter().all(|m| self.allows_method(m)));
        methods && self.path.covers(&other.path)
    }
}

/// The rules in force, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteTable {
    rules: Vec<RouteRule>,
}

/// A rule that matched a request, and what its path captured.
#[derive(Debug)]
pub struct RouteMatch<'t, 'p> {
    pub rule: &'t RouteRule,
    pub captures: Vec<(&'t str, &'p str)>,
}

impl RouteTable {
    /// The rules, refusing one that no request could reach because an earlier one takes all
    /// its requests: `Err((index, message))`.
    pub fn new(rules: Vec<RouteRule>) -> Result<Self, (usize, RuleError)> {
        for (index, rule) in rules.iter().enumerate() {
            if let Some(earlier) = rules[..index].iter().position(|e| e.covers(rule)) {
                return Err((
                    index,
                    refuse(format!(
                        "this rule can never match: rule {} ({}) takes every request it would",
                        earlier + 1,
                        rules[earlier].path
                    )),
                ));
            }
            // Several earlier rules may share its methods out between them.
            let earlier = &rules[..index];
            let method_taken = |method: &String| {
                earlier
                    .iter()
                    .any(|e| e.allows_method(method) && e.path.covers(&rule.path))
            };
            if !rule.methods.is_empty() && rule.methods.iter().all(method_taken) {
                return Err((
                    index,
                    refuse(
                        "this rule can never match: earlier rules take every request it would, \
                         method by method",
                    ),
                ));
            }
        }
        Ok(Self { rules })
    }

    /// The same rules with their scopes taken from `catalog` (the one in force), so that
    /// they can never be read against another catalog than the one they were parsed with. A
    /// rule naming a scope `catalog` lacks refuses every request it matches.
    pub fn bound_to(&self, catalog: &ScopeCatalog) -> Self {
        let rules = self
            .rules
            .iter()
            .map(|rule| {
                let scopes = catalog.parse(&rule.scope_names).ok();
                RouteRule {
                    scopes: scopes.unwrap_or_default(),
                    satisfiable: scopes.is_some(),
                    ..rule.clone()
                }
            })
            .collect();
        Self { rules }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// The first rule that matches `method` and `path` (a query string is ignored).
    pub fn find<'t, 'p>(&'t self, method: &str, path: &'p str) -> Option<RouteMatch<'t, 'p>> {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        self.rules.iter().find_map(|rule| {
            if !rule.allows_method(method) {
                return None;
            }
            rule.path
                .matches(path)
                .map(|captures| RouteMatch { rule, captures })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(methods: &[&str], path: &str, scopes: &[&str], project: Option<&str>) -> RouteRule {
        let owned = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        RouteRule::parse(
            &owned(methods),
            path,
            &owned(scopes),
            project,
            &ScopeCatalog::builtin(),
        )
        .unwrap()
    }

    #[test]
    fn patterns_capture_segments_and_a_trailing_rest() {
        let table = RouteTable::new(vec![
            rule(
                &["GET"],
                "/v1/databases/{project_id}/*",
                &["instances:read"],
                Some("project_id"),
            ),
            rule(
                &[],
                "/v1/databases/{project_id}",
                &["instances:write"],
                None,
            ),
        ])
        .unwrap();
        let found = table
            .find("GET", "/v1/databases/prj_1/tables/t?x=1")
            .unwrap();
        assert_eq!(found.captures, [("project_id", "prj_1")]);
        assert!(found.rule.scopes.contains(crate::Scope::INSTANCES_READ));
        // The rest may be empty.
        assert!(table.find("GET", "/v1/databases/prj_1").is_some());
        assert!(
            table.find("HEAD", "/v1/databases/prj_1/t").is_some(),
            "HEAD is GET"
        );
        let post = table.find("POST", "/v1/databases/prj_1").unwrap();
        assert!(post.rule.scopes.contains(crate::Scope::INSTANCES_WRITE));
        assert!(table.find("POST", "/v1/databases/prj_1/x").is_none());
        assert!(table.find("GET", "/v1/databases").is_none());
        assert!(
            table.find("GET", "/v1/databases/").is_none(),
            "an empty capture"
        );
        assert!(table.find("GET", "/v2/databases/prj_1").is_none());

        let table = RouteTable::new(vec![
            rule(&[], "/", &[], None),
            rule(&[], "/health", &[], None),
        ])
        .unwrap();
        assert!(table.find("GET", "/").is_some());
        assert!(table.find("GET", "/health?x=1").is_some());
        for never in ["", "/health/", "//", "/health/x", "/x"] {
            assert!(table.find("GET", never).is_none(), "{never}");
        }
    }

    #[test]
    fn bad_rules_and_unreachable_ones_are_refused_with_a_reason() {
        let refused = |path: &str, scopes: &[&str], project: Option<&str>| {
            let owned = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
            RouteRule::parse(&[], path, &owned(scopes), project, &ScopeCatalog::builtin())
                .unwrap_err()
                .to_string()
        };
        assert!(refused("v1/x", &[], None).contains("must start with /"));
        assert!(refused("/v1/*/x", &[], None).contains("may only end"));
        assert!(refused("/v1/{Bad}", &[], None).contains("not a valid name"));
        assert!(refused("/v1/{a}/{a}", &[], None).contains("captured twice"));
        for never in ["/v1/../x", "/v1/./x", "/v1/a%2Fb", "/v1/a;b", "/v1/a\\b"] {
            assert!(refused(never, &[], None).contains("not valid"), "{never}");
        }
        for never in [
            "/v1/données",
            "/v1/a b",
            "/v1/a\"b",
            "/v1/<a>",
            "/v1/a|b",
            "/v1/a^b",
        ] {
            assert!(
                refused(never, &[], None).contains("could never match"),
                "{never}"
            );
        }
        assert!(refused("/v1/x", &["databases:read"], None).contains("unknown scope"));
        assert!(refused("/v1/x", &[], Some("project_id")).contains("neither"));
        for header in [
            "header:X Project",
            "header:X_Project_Id",
            "header:x:y",
            "header:é",
        ] {
            assert!(
                refused("/v1/x", &[], Some(header)).contains("is not a header name"),
                "{header}"
            );
        }
        assert!(refused("/v1/x", &[], Some("header:")).contains("needs a header name"));
        let fine = [
            "/v1/a-b.c_d~e",
            "/v1/user@host",
            "/v1/a:b",
            "/v1/x,y=z",
            "/v1/(1)!$&'+",
        ];
        for path in fine {
            let parsed = RouteRule::parse(
                &[],
                path,
                &[],
                Some("header:X-Project-Id"),
                &ScopeCatalog::builtin(),
            );
            assert!(parsed.is_ok(), "{path}: {parsed:?}");
        }
        assert!(
            RouteRule::parse(&["G-T".into()], "/x", &[], None, &ScopeCatalog::builtin()).is_err()
        );
        let named = |name: &str| rule(&[], "/x", &[], None).named(name);
        assert_eq!(
            named("databases.read-v2_1").unwrap().name.as_deref(),
            Some("databases.read-v2_1")
        );
        for refused in ["", "Databases", "1st", "a b", "é", &"a".repeat(65)] {
            assert!(named(refused).is_err(), "{refused:?}");
        }
        let costing = |cost: i64| rule(&[], "/x", &[], None).costing(cost);
        assert_eq!(rule(&[], "/x", &[], None).cost, 1);
        assert_eq!(costing(0).unwrap().cost, 0);
        assert_eq!(costing(MAX_COST).unwrap().cost, MAX_COST);
        assert!(costing(-1).is_err() && costing(MAX_COST + 1).is_err());

        let shadowed = RouteTable::new(vec![
            rule(&[], "/v1/*", &[], None),
            rule(&["GET"], "/v1/databases/{id}", &["instances:read"], None),
        ])
        .unwrap_err();
        assert_eq!(shadowed.0, 1);
        assert!(shadowed.1.to_string().contains("rule 1 (/v1/*)"));
        // Shared out between earlier rules, method by method.
        let split = RouteTable::new(vec![
            rule(&["GET"], "/x", &[], None),
            rule(&["POST"], "/x", &[], None),
            rule(&["GET", "POST"], "/x", &[], None),
        ])
        .unwrap_err();
        assert_eq!(split.0, 2);
        assert!(split.1.to_string().contains("method by method"));
        // A narrower method set, or a literal against a capture, leaves room.
        assert!(
            RouteTable::new(vec![
                rule(&["GET"], "/v1/*", &[], None),
                rule(&[], "/v1/databases/{id}", &[], None),
                rule(&[], "/v1/{kind}/special", &[], None),
            ])
            .is_ok()
        );
        assert!(
            RouteTable::new(vec![
                rule(&[], "/v1/{kind}/x", &[], None),
                rule(&[], "/v1/databases/x", &[], None),
            ])
            .is_err()
        );
    }

    #[test]
    fn rules_bound_to_another_catalog_take_its_scopes_or_refuse() {
        let definition = |name: &str| crate::ScopeDefinition {
            name: name.into(),
            description: "A scope.".into(),
            level: None,
            min_role: None,
        };
        let first = ScopeCatalog::new(&[definition("a:read"), definition("b:read")]).unwrap();
        let owned = vec!["b:read".to_owned()];
        let table = RouteTable::new(vec![
            RouteRule::parse(&[], "/b/*", &owned, None, &first).unwrap(),
        ])
        .unwrap();
        // Another catalog puts b:read elsewhere: the rule follows it by name.
        let second = ScopeCatalog::new(&[definition("b:read")]).unwrap();
        let bound = table.bound_to(&second);
        let rule = bound.find("GET", "/b/x").unwrap().rule;
        assert!(rule.satisfiable);
        assert_eq!(second.names(&rule.scopes).collect::<Vec<_>>(), ["b:read"]);
        // One that lacks it: the rule refuses.
        let bound = table.bound_to(&ScopeCatalog::builtin());
        assert!(!bound.find("GET", "/b/x").unwrap().rule.satisfiable);
    }
}
