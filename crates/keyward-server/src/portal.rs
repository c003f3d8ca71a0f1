//! Portal sessions: the platform opens the dashboard for one of its people with a one-time
//! link (`POST /v1/portal-sessions`), confined to one organization and some of its pages,
//! with a way back to the platform's console, and shown, if the platform says so, inside its
//! console's pages (`[portal] frame_ancestors`).

use std::time::Duration;

/// A page a portal session may show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortalPage {
    ApiKeys,
    Tokens,
    AuditLog,
    Webhooks,
    Members,
    Usage,
}

impl PortalPage {
    pub const ALL: [PortalPage; 6] = [
        Self::ApiKeys,
        Self::Tokens,
        Self::AuditLog,
        Self::Webhooks,
        Self::Members,
        Self::Usage,
    ];

    /// What a link without `pages` shows.
    pub const DEFAULT: [PortalPage; 2] = [Self::ApiKeys, Self::Tokens];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiKeys => "api_keys",
            Self::Tokens => "tokens",
            Self::AuditLog => "audit_log",
            Self::Webhooks => "webhooks",
            Self::Members => "members",
            Self::Usage => "usage",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|page| page.as_str() == text)
    }

    /// Where the page starts.
    pub fn path(self) -> &'static str {
        match self {
            Self::ApiKeys => "/settings/api-keys",
            Self::Tokens => "/settings/tokens",
            Self::AuditLog => "/settings/audit-log",
            Self::Webhooks => "/settings/webhooks",
            Self::Members => "/settings/members",
            Self::Usage => "/settings/usage",
        }
    }

    /// Whether `path` (a request's) belongs to this page.
    fn covers(self, path: &str) -> bool {
        let under = |prefix: &str| {
            path == prefix
                || path
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        match self {
            // A project's tokens live under its path: `/settings/projects/{id}/tokens…`.
            Self::Tokens => {
                under("/settings/tokens")
                    || path
                        .strip_prefix("/settings/projects/")
                        .and_then(|rest| rest.split_once('/'))
                        .is_some_and(|(id, rest)| {
                            !id.is_empty() && (rest == "tokens" || rest.starts_with("tokens/"))
                        })
            }
            page => under(page.path()),
        }
    }
}

/// The pages of a portal session, as stored: names separated by spaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortalPages(pub Vec<PortalPage>);

impl PortalPages {
    pub fn from_storage(text: &str) -> Self {
        Self(text.split(' ').filter_map(PortalPage::parse).collect())
    }

    pub fn to_storage(&self) -> String {
        self.0
            .iter()
            .map(|page| page.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn contains(&self, page: PortalPage) -> bool {
        self.0.contains(&page)
    }

    /// Whether a request for `path` is within the session's pages.
    pub fn allow(&self, path: &str) -> bool {
        self.0.iter().any(|page| page.covers(path))
    }

    /// Where the session starts: its first page.
    pub fn first_path(&self) -> &'static str {
        self.0
            .first()
            .map_or(PortalPage::ApiKeys.path(), |page| page.path())
    }
}

/// `[portal]`: where people may be sent back to, who may frame the portal, and how long a
/// portal session lasts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortalSettings {
    /// The origins a `return_url` may have (`https://console.example.com`).
    pub return_origins: Vec<String>,
    /// The origins that may show portal sessions in a frame; empty: none may.
    pub frame_ancestors: Vec<String>,
    /// The longest a portal session lasts (and how long it lasts unless the link says less).
    pub session_length: Duration,
}

impl Default for PortalSettings {
    fn default() -> Self {
        Self {
            return_origins: Vec::new(),
            frame_ancestors: Vec::new(),
            session_length: Duration::from_secs(3600),
        }
    }
}

/// Whether `host` is a loopback name or address, where plain http is allowed (development,
/// tests).
fn loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(name) => *name == "localhost",
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// An origin as the configuration names one: `https://host[:port]`, or `http://` on a
/// loopback address; nothing after the port. Returns it in its serialized form.
pub fn parse_origin(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text).map_err(|e| format!("`{text}` is not a URL ({e})"))?;
    https_or_loopback(&url, text)?;
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`{text}` is not an origin: write only the scheme, host and port"
        ));
    }
    Ok(url.origin().ascii_serialization())
}

/// Whether `url` (written `text`) is https, or http on a loopback address: what every URL of
/// the configuration and of a provider must be.
pub(crate) fn https_or_loopback(url: &url::Url, text: &str) -> Result<(), String> {
    let host = url
        .host()
        .ok_or_else(|| format!("`{text}` names no host"))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback(&host) => Ok(()),
        _ => Err(format!(
            "`{text}` must use https (plain http only on a loopback address)"
        )),
    }
}

impl PortalSettings {
    /// A `return_url` if its origin is one of `return_origins`: the reason otherwise.
    pub fn check_return_url(&self, text: &str) -> Result<String, String> {
        if text.len() > 2000 {
            return Err("must be at most 2000 characters".into());
        }
        let url = url::Url::parse(text).map_err(|_| "must be an absolute URL".to_owned())?;
        https_or_loopback(&url, text)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry a user name or password".into());
        }
        let origin = url.origin().ascii_serialization();
        if self.return_origins.is_empty() {
            return Err(
                "no return origin is configured: add the console's origin to `[portal] \
                 return_origins`"
                    .into(),
            );
        }
        if !self.return_origins.contains(&origin) {
            return Err(format!(
                "the origin {origin} is not one of `[portal] return_origins`"
            ));
        }
        Ok(url.to_string())
    }

    /// The `frame-ancestors` source list of a portal page.
    pub fn frame_ancestors_policy(&self) -> String {
        if self.frame_ancestors.is_empty() {
            "'none'".to_owned()
        } else {
            self.frame_ancestors.join(" ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_their_paths_only() {
        let pages = PortalPages(vec![PortalPage::ApiKeys, PortalPage::Tokens]);
        for allowed in [
            "/settings/api-keys",
            "/settings/api-keys/new",
            "/settings/api-keys/key_x/revoke",
            "/settings/tokens",
            "/settings/projects/prj_1/tokens",
            "/settings/projects/prj_1/tokens/tok_2/revoke",
        ] {
            assert!(pages.allow(allowed), "{allowed}");
        }
        for refused in [
            "/settings/api-keysx",
            "/settings/projects",
            "/settings/projects/prj_1/instances",
            "/settings/projects/prj_1/tokensx",
            "/settings/projects//tokens",
            "/settings/members",
            "/settings/organization",
            "/settings/organization/policy",
            "/settings/audit-log",
            "/settings/webhooks",
            "/logout",
            "/",
        ] {
            assert!(!pages.allow(refused), "{refused}");
        }
        assert_eq!(PortalPages::from_storage(&pages.to_storage()), pages);
    }

    #[test]
    fn origins_are_https_or_loopback() {
        assert_eq!(
            parse_origin("https://console.example.com/").unwrap(),
            "https://console.example.com"
        );
        assert_eq!(
            parse_origin("http://127.0.0.1:3000").unwrap(),
            "http://127.0.0.1:3000"
        );
        assert!(parse_origin("http://localhost:3000").is_ok());
        assert!(parse_origin("http://console.example.com").is_err());
        assert!(parse_origin("https://console.example.com/app").is_err());
        assert!(parse_origin("console.example.com").is_err());
    }

    #[test]
    fn return_urls_must_be_on_a_configured_origin() {
        let settings = PortalSettings {
            return_origins: vec!["https://console.example.com".into()],
            ..PortalSettings::default()
        };
        assert!(
            settings
                .check_return_url("https://console.example.com/settings?tab=keys")
                .is_ok()
        );
        for refused in [
            "https://evil.example.com/",
            "http://console.example.com/",
            "https://console.example.com.evil.com/",
            "https://user:pw@console.example.com/",
            "javascript:alert(1)",
            "/relative",
        ] {
            assert!(settings.check_return_url(refused).is_err(), "{refused}");
        }
        assert!(
            PortalSettings::default()
                .check_return_url("https://console.example.com/")
                .unwrap_err()
                .contains("return_origins")
        );
    }
}
