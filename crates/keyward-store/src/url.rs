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

/// `url` with the password of its user information (`user:PASSWORD@`) and any `password=`
/// query parameter replaced by `***`.
pub fn redact(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = url.find("://") {
        let authority_start = scheme_end + 3;
        let authority_end = url[authority_start..]
            .find(['/', '?', '#'])
            .map_or(url.len(), |i| authority_start + i);
        let authority = &url[authority_start..authority_end];
        if let Some(at) = authority.rfind('@')
            && let Some(colon) = authority[..at].find(':')
        {
            out = format!(
                "{}***{}",
                &url[..authority_start + colon + 1],
                &url[authority_start + at..]
            );
        }
    }
    if let Some(query_start) = out.find('?') {
        let (base, query) = out.split_at(query_start + 1);
        let redacted: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if name.eq_ignore_ascii_case("password") => format!("{name}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out = format!("{base}{}", redacted.join("&"));
    }
    out
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
            ("postgres://u:a@b@h/db", "postgres://u:***@h/db"),
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
