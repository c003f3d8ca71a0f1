//! Single sign-on with the platform's OpenID provider (`[oidc]`): the authorization code flow
//! with PKCE (S256), `state` and `nonce`.
//!
//! The ID token is checked by the `openidconnect` crate: its signature against the provider's
//! JWKS (fetched again once when a token names a key it does not have), with an algorithm of
//! [`ALLOWED_ALGORITHMS`] (never `none`, never a shared secret), its `iss`, `aud`, `exp` and
//! `nonce`; Keyward adds `azp`, and `iat` and `exp` with [`SKEW_SECONDS`] of leeway. The
//! provider's discovery document and keys are read on first use and kept; a failure to read
//! them is a page that says so, and the next sign-in tries again.

use std::sync::Arc;
use std::time::Duration;

use openidconnect::core::{
    CoreGenderClaim, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreProviderMetadata,
};
use openidconnect::{
    AdditionalClaims, ClaimsVerificationError, ClientId, IdTokenVerifier, IssuerUrl, Nonce,
    PkceCodeChallenge, SignatureVerificationError,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The signature algorithms an ID token may use.
pub const ALLOWED_ALGORITHMS: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// Leeway for the clocks of Keyward and the provider: `iat` may be this far ahead, `exp` this
/// far behind.
pub const SKEW_SECONDS: i64 = 60;

/// How long a sign-in may take at the provider.
pub const LOGIN_SECONDS: i64 = 600;

/// `[oidc]`.
#[derive(Clone)]
pub struct OidcSettings {
    /// Shown as "Sign in with <name>".
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// The claim naming the organization(s) (by external id) the person belongs to.
    pub organization_claim: Option<String>,
    /// The claim holding the person's role there: owner, admin or member.
    pub role_claim: Option<String>,
    /// Whether the log-in page keeps its password form.
    pub password_login: bool,
}

impl std::fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSettings")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"…")
            .field("organization_claim", &self.organization_claim)
            .field("role_claim", &self.role_claim)
            .field("password_login", &self.password_login)
            .finish()
    }
}

/// An https URL, or http on a loopback address (development, tests).
pub fn check_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| format!("`{text}` is not a URL ({e})"))?;
    crate::portal::https_or_loopback(&url, text)?;
    Ok(url)
}

/// Why a sign-in through the provider failed; each is a page, and no session.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error(
        "the sign-in could not be matched to one started here (its state is missing or wrong); start again"
    )]
    State,
    #[error("the identity provider refused the sign-in: {0}")]
    Provider(String),
    #[error("the identity provider could not be reached or answered nonsense: {0}")]
    Unreachable(String),
    #[error("the identity provider's answer did not prove who you are: {0}")]
    Token(String),
}

/// The claims beyond the standard ones: the organization and role claims.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ExtraClaims {
    #[serde(flatten)]
    pub claims: Map<String, Value>,
}

impl AdditionalClaims for ExtraClaims {}

type IdToken = openidconnect::IdToken<
    ExtraClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// What the provider said, with what Keyward needs of it.
struct Provider {
    metadata: CoreProviderMetadata,
    end_session_endpoint: Option<url::Url>,
    keys: CoreJsonWebKeySet,
}

/// A sign-in under way: what the callback must match, kept in a cookie of its own.
pub struct Pending {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
}

impl Pending {
    /// The cookie's value: three URL-safe values joined by dots.
    pub fn to_cookie(&self) -> String {
        format!("{}.{}.{}", self.state, self.nonce, self.verifier)
    }

    pub fn from_cookie(value: &str) -> Option<Self> {
        let mut parts = value.split('.');
        let (state, nonce, verifier) = (parts.next()?, parts.next()?, parts.next()?);
        let safe = |s: &str| {
            !s.is_empty()
                && s.len() <= 128
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        (parts.next().is_none() && safe(state) && safe(nonce) && safe(verifier)).then(|| Self {
            state: state.to_owned(),
            nonce: nonce.to_owned(),
            verifier: verifier.to_owned(),
        })
    }
}

/// The person the provider vouches for.
#[derive(Clone, Debug)]
pub struct Identity {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    /// The organization claim's values (a string or a list of strings).
    pub organizations: Option<Vec<String>>,
    pub role: Option<String>,
}

/// The provider, its settings and what it said.
pub struct Oidc {
    pub settings: OidcSettings,
    http: reqwest::Client,
    provider: tokio::sync::RwLock<Option<Arc<Provider>>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.settings.fmt(f)
    }
}

fn random_value() -> Result<String, OidcError> {
    keyward_core::credential::random_token().map_err(|e| OidcError::Unreachable(e.to_string()))
}

impl Oidc {
    pub fn new(settings: OidcSettings) -> Result<Self, String> {
        check_url(&settings.issuer)?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            settings,
            http,
            provider: tokio::sync::RwLock::new(None),
        })
    }

    async fn get_json(&self, url: &str) -> Result<Value, OidcError> {
        let answer = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| OidcError::Unreachable(format!("{url}: {e}")))?;
        if !answer.status().is_success() {
            return Err(OidcError::Unreachable(format!(
                "{url} answered {}",
                answer.status()
            )));
        }
        answer
            .json()
            .await
            .map_err(|e| OidcError::Unreachable(format!("{url}: {e}")))
    }

    async fn discover(&self) -> Result<Arc<Provider>, OidcError> {
        let issuer = self.settings.issuer.trim_end_matches('/');
        let document = self
            .get_json(&format!("{issuer}/.well-known/openid-configuration"))
            .await?;
        let end_session_endpoint = document["end_session_endpoint"]
            .as_str()
            .and_then(|url| check_url(url).ok());
        let metadata: CoreProviderMetadata = serde_json::from_value(document)
            .map_err(|e| OidcError::Unreachable(format!("discovery document: {e}")))?;
        if metadata.issuer().as_str().trim_end_matches('/') != issuer {
            return Err(OidcError::Unreachable(format!(
                "the discovery document names the issuer {}, not {issuer}",
                metadata.issuer().as_str()
            )));
        }
        // Every endpoint Keyward talks to or sends the browser to: the token endpoint gets
        // the client secret, the userinfo endpoint the access token.
        let endpoints = [
            Some(metadata.authorization_endpoint().as_str()),
            Some(metadata.jwks_uri().as_str()),
            metadata.token_endpoint().map(|url| url.as_str()),
            metadata.userinfo_endpoint().map(|url| url.as_str()),
        ];
        for endpoint in endpoints.into_iter().flatten() {
            check_url(endpoint).map_err(OidcError::Unreachable)?;
        }
        let keys = self.fetch_keys(&metadata).await?;
        Ok(Arc::new(Provider {
            metadata,
            end_session_endpoint,
            keys,
        }))
    }

    async fn fetch_keys(
        &self,
        metadata: &CoreProviderMetadata,
    ) -> Result<CoreJsonWebKeySet, OidcError> {
        let keys = self.get_json(metadata.jwks_uri().as_str()).await?;
        serde_json::from_value(keys).map_err(|e| OidcError::Unreachable(format!("JWKS: {e}")))
    }

    /// The provider, discovered on first use.
    async fn provider(&self) -> Result<Arc<Provider>, OidcError> {
        if let Some(provider) = self.provider.read().await.clone() {
            return Ok(provider);
        }
        let mut slot = self.provider.write().await;
        if let Some(provider) = slot.clone() {
            return Ok(provider);
        }
        let provider = self.discover().await?;
        *slot = Some(provider.clone());
        Ok(provider)
    }

    /// The provider with its keys read again (a token named a key it did not have).
    async fn refresh_keys(&self, stale: &Arc<Provider>) -> Result<Arc<Provider>, OidcError> {
        let mut slot = self.provider.write().await;
        if let Some(current) = slot.clone()
            && !Arc::ptr_eq(&current, stale)
        {
            return Ok(current);
        }
        let keys = self.fetch_keys(&stale.metadata).await?;
        let fresh = Arc::new(Provider {
            metadata: stale.metadata.clone(),
            end_session_endpoint: stale.end_session_endpoint.clone(),
            keys,
        });
        *slot = Some(fresh.clone());
        Ok(fresh)
    }

    /// Tries the discovery once, at start, so that a mistake shows in the log at once.
    pub async fn check(&self) -> Result<(), OidcError> {
        self.provider().await.map(|_| ())
    }

    /// Where to send the browser to sign in, and what the callback must match.
    pub async fn begin(&self, redirect_uri: &str) -> Result<(url::Url, Pending), OidcError> {
        let provider = self.provider().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let pending = Pending {
            state: random_value()?,
            nonce: random_value()?,
            verifier: verifier.secret().clone(),
        };
        let mut url = provider.metadata.authorization_endpoint().url().clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", "openid email profile")
            .append_pair("state", &pending.state)
            .append_pair("nonce", &pending.nonce)
            .append_pair("code_challenge", challenge.as_str())
            .append_pair("code_challenge_method", "S256");
        Ok((url, pending))
    }

    /// Where log-out ends the session at the provider too, if it says.
    pub async fn logout_url(&self, post_logout_redirect_uri: &str) -> Option<url::Url> {
        let provider = self.provider().await.ok()?;
        let mut url = provider.end_session_endpoint.clone()?;
        url.query_pairs_mut()
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("post_logout_redirect_uri", post_logout_redirect_uri);
        Some(url)
    }

    /// Exchanges the code (with the PKCE verifier) and checks the ID token: the person it
    /// names. `now` is Keyward's clock, in seconds.
    pub async fn finish(
        &self,
        code: &str,
        pending: &Pending,
        redirect_uri: &str,
        now: i64,
    ) -> Result<Identity, OidcError> {
        let provider = self.provider().await?;
        let token_endpoint = provider
            .metadata
            .token_endpoint()
            .ok_or_else(|| OidcError::Unreachable("the provider names no token endpoint".into()))?
            .url()
            .clone();
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_verifier", &pending.verifier)
            .finish();
        let answer = self
            .http
            .post(token_endpoint.clone())
            .basic_auth(
                form_component(&self.settings.client_id),
                Some(form_component(&self.settings.client_secret)),
            )
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(form)
            .send()
            .await
            .map_err(|e| OidcError::Unreachable(format!("{token_endpoint}: {e}")))?;
        let status = answer.status();
        let body: Value = answer
            .json()
            .await
            .map_err(|e| OidcError::Unreachable(format!("{token_endpoint}: {e}")))?;
        if !status.is_success() {
            let error = body["error"].as_str().unwrap_or("an error");
            return Err(OidcError::Provider(format!(
                "{error} ({})",
                body["error_description"]
                    .as_str()
                    .unwrap_or("no description")
            )));
        }
        let raw = body["id_token"]
            .as_str()
            .ok_or_else(|| OidcError::Token("no ID token in the answer".into()))?;
        let token: IdToken = raw
            .parse()
            .map_err(|e| OidcError::Token(format!("a malformed ID token ({e})")))?;
        let mut identity = match self.verify(&provider, &token, &pending.nonce, now) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // The provider may have rotated its keys: read them again, once.
                let fresh = self.refresh_keys(&provider).await?;
                self.verify(&fresh, &token, &pending.nonce, now)
            }
            other => other,
        }
        .map_err(|e| OidcError::Token(e.to_string()))?;
        if let (Some(userinfo), Some(access_token)) = (
            provider.metadata.userinfo_endpoint(),
            body["access_token"].as_str(),
        ) && (identity.email.is_none() || self.wants_more(&identity))
        {
            self.complete_from_userinfo(&mut identity, userinfo.url(), access_token)
                .await?;
        }
        Ok(identity)
    }

    fn wants_more(&self, identity: &Identity) -> bool {
        (self.settings.organization_claim.is_some() && identity.organizations.is_none())
            || (self.settings.role_claim.is_some() && identity.role.is_none())
    }

    fn verify(
        &self,
        provider: &Provider,
        token: &IdToken,
        nonce: &str,
        now: i64,
    ) -> Result<Identity, ClaimsVerificationError> {
        let client_id = ClientId::new(self.settings.client_id.clone());
        let issuer = IssuerUrl::new(self.settings.issuer.clone())
            .map_err(|e| ClaimsVerificationError::Other(e.to_string()))?;
        let at = |seconds: i64| {
            chrono::DateTime::from_timestamp(seconds, 0).unwrap_or(chrono::DateTime::UNIX_EPOCH)
        };
        let verifier =
            IdTokenVerifier::new_public_client(client_id.clone(), issuer, provider.keys.clone())
                .set_allowed_algs(ALLOWED_ALGORITHMS)
                // `exp` with leeway: the token counts as expired SKEW_SECONDS after it says.
                .set_time_fn(move || at(now - SKEW_SECONDS))
                .set_issue_time_verifier_fn(move |issued| {
                    if issued.timestamp() > now + SKEW_SECONDS {
                        Err(format!("issued in the future ({issued})"))
                    } else {
                        Ok(())
                    }
                });
        let claims = token.claims(&verifier, &Nonce::new(nonce.to_owned()))?;
        // The authorized party, which the crate leaves to its users.
        let audiences = claims.audiences();
        match claims.authorized_party() {
            Some(party) if party.as_str() != client_id.as_str() => {
                return Err(ClaimsVerificationError::InvalidAudience(format!(
                    "the authorized party is {}, not this client",
                    party.as_str()
                )));
            }
            None if audiences.len() > 1 => {
                return Err(ClaimsVerificationError::InvalidAudience(
                    "several audiences and no authorized party".into(),
                ));
            }
            _ => {}
        }
        let extra = &claims.additional_claims().claims;
        Ok(Identity {
            subject: claims.subject().as_str().to_owned(),
            email: claims.email().map(|e| e.as_str().to_owned()),
            email_verified: claims.email_verified().unwrap_or(false),
            name: claims
                .name()
                .and_then(|name| name.get(None))
                .map(|name| name.as_str().to_owned()),
            organizations: self
                .settings
                .organization_claim
                .as_ref()
                .and_then(|claim| strings(extra.get(claim))),
            role: self
                .settings
                .role_claim
                .as_ref()
                .and_then(|claim| extra.get(claim))
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }

    /// Fills in what the ID token left out from the provider's userinfo endpoint, whose
    /// `sub` must be the token's.
    async fn complete_from_userinfo(
        &self,
        identity: &mut Identity,
        endpoint: &url::Url,
        access_token: &str,
    ) -> Result<(), OidcError> {
        let answer = self
            .http
            .get(endpoint.clone())
            .bearer_auth(access_token)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| OidcError::Unreachable(format!("{endpoint}: {e}")))?;
        if !answer.status().is_success() {
            return Err(OidcError::Unreachable(format!(
                "{endpoint} answered {}",
                answer.status()
            )));
        }
        let info: Value = answer
            .json()
            .await
            .map_err(|e| OidcError::Unreachable(format!("{endpoint}: {e}")))?;
        if info["sub"].as_str() != Some(identity.subject.as_str()) {
            return Err(OidcError::Token(
                "the userinfo endpoint names another subject".into(),
            ));
        }
        if identity.email.is_none() {
            identity.email = info["email"].as_str().map(str::to_owned);
            identity.email_verified = info["email_verified"].as_bool().unwrap_or(false);
        }
        if identity.name.is_none() {
            identity.name = info["name"].as_str().map(str::to_owned);
        }
        if identity.organizations.is_none()
            && let Some(claim) = &self.settings.organization_claim
        {
            identity.organizations = strings(info.get(claim));
        }
        if identity.role.is_none()
            && let Some(claim) = &self.settings.role_claim
        {
            identity.role = info[claim].as_str().map(str::to_owned);
        }
        Ok(())
    }
}

/// A claim that is a string or a list of strings.
fn strings(value: Option<&Value>) -> Option<Vec<String>> {
    match value? {
        Value::String(one) => Some(vec![one.clone()]),
        Value::Array(many) => Some(
            many.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        ),
        _ => None,
    }
}

/// RFC 6749 §2.3.1: the client id and secret are form-encoded before HTTP Basic.
fn form_component(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_sign_ins_survive_their_cookie_and_nothing_else_does() {
        let pending = Pending {
            state: "abc".into(),
            nonce: "d-e_f".into(),
            verifier: "x".repeat(43),
        };
        let back = Pending::from_cookie(&pending.to_cookie()).unwrap();
        assert_eq!((back.state, back.nonce), ("abc".into(), "d-e_f".into()));
        for bad in ["", "a.b", "a.b.c.d", "a..c", "a.b.c;", "a b.c.d"] {
            assert!(Pending::from_cookie(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn claims_are_strings_or_lists() {
        assert_eq!(
            strings(Some(&Value::String("a".into()))),
            Some(vec!["a".to_owned()])
        );
        assert_eq!(
            strings(Some(&serde_json::json!(["a", 1, "b"]))),
            Some(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(strings(Some(&serde_json::json!(1))), None);
        assert_eq!(strings(None), None);
    }

    #[test]
    fn provider_urls_are_https_or_loopback() {
        assert!(check_url("https://id.example.com").is_ok());
        assert!(check_url("http://127.0.0.1:9000/oidc").is_ok());
        assert!(check_url("http://localhost:9000").is_ok());
        assert!(check_url("http://id.example.com").is_err());
        assert!(check_url("id.example.com").is_err());
    }
}
