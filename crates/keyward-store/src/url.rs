//! Database URLs as operators write them, and as Keyward shows them: never with a password.

use std::fmt;
use std::str::FromStr;

/// A configured database URL. `Display` and `Debug` hide its password, so it can be logged,
/// printed in errors and derived into `Debug` output safely; [`DatabaseUrl::expose`] gives
/// the real one to the driver.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL with its password, for connecting only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;
    fn from_str(url: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(url))
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({:?})", redact(&self.0))
    }
}

/// `url` with the password of its user information (`user:PASSWORD@`) and any `password`
/// query parameter replaced by `***`. A URL that contains an `@` or a `password` parameter
/// but does not parse is shown as its scheme alone: better to hide too much than a password.
pub fn redact(url: &str) -> String {
    let lowered = url.to_ascii_lowercase();
    if !url.contains('@') && !lowered.contains("password") && !lowered.contains("%70") {
        return url.to_owned();
    }
    let hidden = || {
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        format!("{scheme}:(the rest is hidden: it may hold a password)")
    };
    let Ok(mut parsed) = url::Url::parse(url) else {
        return hidden();
    };
    // An `@` outside the user information (`postgres:/u:pw@h`) is a mistyped URL.
    if url.contains('@') && parsed.username().is_empty() && parsed.password().is_none() {
        return hidden();
    }
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(name, value)| {
                let value = if name.eq_ignore_ascii_case("password") {
                    "***".to_owned()
                } else {
                    value.into_owned()
                };
                (name.into_owned(), value)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        for (url, shown) in [
            (
                "postgres://keyward:s3cret@db.example.com:5432/keyward",
                "postgres://keyward:***@db.example.com:5432/keyward",
            ),
            (
                "postgresql://u:p%40ss@h/db?sslmode=require&password=s3cret",
                "postgresql://u:***@h/db?sslmode=require&password=***",
            ),
            (
                "postgres://u:a%40b@h/db?pass%77ord=s3cret",
                "postgres://u:***@h/db?password=***",
            ),
            (
                "postgres://u:pa/ss@h/db",
                "postgres:(the rest is hidden: it may hold a password)",
            ),
            (
                "postgres:/u:s3cret@h",
                "postgres:(the rest is hidden: it may hold a password)",
            ),
            ("postgres://keyward@h/db", "postgres://keyward@h/db"),
            (
                "sqlite://./keyward-data/keyward.db",
                "sqlite://./keyward-data/keyward.db",
            ),
            (
                "mysql://root:hunter2@localhost/x",
                "mysql://root:***@localhost/x",
            ),
        ] {
            assert_eq!(redact(url), shown);
            let configured: DatabaseUrl = url.parse().unwrap();
            assert_eq!(configured.to_string(), shown);
            assert!(!format!("{configured:?}").contains("s3cret"));
            assert_eq!(configured.expose(), url);
        }
    }
}
