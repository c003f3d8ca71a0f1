//! Bearer authentication: who is calling, and may they do this?
//!
//! The [`Principal`] extractor, first in every `/v1` handler, takes `Authorization: Bearer
//! <key>` and verifies it through the [`Verifier`] (memory first, the database only on a
//! miss). Unknown and revoked keys get the same answer, so the response never tells
//! whether a key ever existed. Revocation invalidates the cache before its response is sent,
//! so the very next request with the key is refused.

mod acting;
mod cache;
mod counts;
mod credits;
mod failures;
mod lease;
mod rates;
mod usage;
mod verifier;

use std::cell::RefCell;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use keyward_core::{
    CredentialId, CredentialKind, OrganizationId, ProjectId, Reach, Scope, ScopeCatalog, ScopeSet,
    Timestamp,
};

pub use acting::ORGANIZATION_HEADER;
pub(crate) use acting::{named as organization_named, resolve as resolve_organization};
pub use cache::{CachedCredential, VerificationCache};
pub use counts::{CountedRoute, UsageCell, UsageCounts};
pub use credits::{Charge, CreditAccount, CreditAccounts, Spent};
pub use failures::{FailureReason, FailureRecorder};
pub use usage::UsageRecorder;
pub use verifier::{Accept, Refusal, Verified, Verifier};

use crate::AppState;
use crate::error::ApiError;
use crate::rate_limit::RateStatus;

/// The verified credential behind a request, in the organization it works in: its own, or
/// for an admin key acting for one (`Keyward-Organization`), that one, with the admin key's
/// organization-level scopes.
#[derive(Clone)]
pub struct Principal {
    pub credential_id: CredentialId,
    /// Its organization, the one an admin key acts for, or (for an admin key not acting)
    /// [`OrganizationId::INSTALLATION`].
    pub organization_id: OrganizationId,
    pub project_id: Option<ProjectId>,
    pub scopes: ScopeSet,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub credential: Arc<CachedCredential>,
}

impl Principal {
    pub fn new(credential: Arc<CachedCredential>) -> Self {
        Self {
            credential_id: credential.id,
            organization_id: credential.organization_id,
            project_id: credential.project_id,
            scopes: credential.scopes,
            created_at: credential.created_at,
            expires_at: credential.expires_at(),
            credential,
        }
    }

    pub fn kind(&self) -> CredentialKind {
        self.credential_id.kind()
    }

    /// The one authorization check of a handler: deny unless the credential holds `scope`,
    /// one of Keyward's own. (A project token holds no scope that is not project-level,
    /// whatever is stored for it: see [`CachedCredential::scopes`].)
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(self.lacks(scope.builtin_name().unwrap_or_default()))
        }
    }

    /// The refusal for a scope this credential lacks, saying whose it is for the audit log.
    fn lacks(&self, scope: &str) -> ApiError {
        ApiError::insufficient_scope(scope, Some((self.organization_id, self.credential_id)))
    }

    /// As [`Self::require`], for any scope of `catalog` (the one in force).
    pub fn require_in(&self, scope: Scope, catalog: &ScopeCatalog) -> Result<(), ApiError> {
        if self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(self.lacks(catalog.name(scope)))
        }
    }

    /// The projects it may touch: all of its organization's, or a project token's own.
    pub fn reach(&self) -> Reach {
        Reach::of(self.project_id)
    }
}

/// What verifying the request's credential left for its response.
#[derive(Default)]
struct Spending {
    /// Its rate-limit state, for the response headers.
    rate: Option<RateStatus>,
    /// The credits it spent on the request (its own, its identity's), to put back if the
    /// request is then refused for a scope it lacks.
    charges: Vec<Charge>,
}

tokio::task_local! {
    static SPENDING: RefCell<Spending>;
}

/// Credits a request spent.
pub(crate) struct Credited {
    /// What is left, as this node knows it: the least of its own and its identity's.
    pub remaining: i64,
    /// What to put back if the request is refused afterwards.
    pub charges: Vec<Charge>,
}

/// Spends `cost` of `credential`'s credits and of its identity's, each if there are any:
/// what is left (as this node knows it), or `credits_exhausted` (counted so in its usage)
/// with nothing spent from either. With a lease empty and the database away, refused as
/// unavailable: credits are never guessed.
pub(crate) async fn spend_credits(
    state: &AppState,
    credential: &CachedCredential,
    cost: i64,
    route: Option<&Arc<str>>,
) -> Result<Option<Credited>, ApiError> {
    let clock = &state.config.clock;
    let now = clock.now();
    let mut credited: Option<Credited> = None;
    for account in [credential.credits(), credential.identity_credits()]
        .into_iter()
        .flatten()
    {
        let spent = account
            .spend(cost, now, clock.monotonic_nanos(), state.store.as_ref())
            .await;
        let refused = match spent {
            Ok(Spent::Allowed { remaining, charge }) => {
                let so_far = credited.get_or_insert(Credited {
                    remaining,
                    charges: Vec::new(),
                });
                so_far.remaining = so_far.remaining.min(remaining);
                so_far.charges.extend(charge);
                continue;
            }
            Ok(Spent::Unlimited) => continue,
            Ok(Spent::Exhausted { retry_after, .. }) => {
                // Counted as allowed when it was verified.
                state.verifier.usage_counts().reclassify(
                    credential.id,
                    "credits_exhausted",
                    route,
                    now,
                );
                ApiError::CreditsExhausted(retry_after)
            }
            Err(keyward_store::StoreError::Unavailable(_)) => ApiError::Unavailable,
            Err(error) => ApiError::internal(error),
        };
        // The stricter wins: what the other spent goes back.
        for charge in credited.map(|c| c.charges).unwrap_or_default() {
            charge.refund();
        }
        return Err(refused);
    }
    Ok(credited)
}

/// Authenticates the request: the first extractor of every organization's `/v1` handler, so
/// nothing is read or parsed for a caller who has no valid credential. An admin key must act
/// for an organization here (see [`acting`]).
impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Authenticated(principal) = Authenticated::from_request_parts(parts, state).await?;
        acting::for_organization(parts, state, principal).await
    }
}

/// The request's verified credential as itself, whatever it is: for the endpoints that are
/// no organization's (`/v1/me`, admin keys, organizations), where an admin key is the
/// installation's.
pub struct Authenticated(pub Principal);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Authenticated already, before the request's idempotency key was claimed.
        if let Some(principal) = parts.extensions.remove::<Principal>() {
            return Ok(Self(principal));
        }
        authenticate(parts, state, Accept::Any).await.map(Self)
    }
}

/// The credential a gateway asks about (forward authentication): an organization's key or
/// token. An admin key checks customers' credentials and is never one: to this, it is
/// unknown (`401 invalid_token`).
pub struct Customer(pub Principal);

impl FromRequestParts<AppState> for Customer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(parts, state, Accept::Customers)
            .await
            .map(Self)
    }
}

/// Verifies the request's Bearer key: once per request, since it counts a use and spends the
/// key's rate limit.
pub(crate) async fn authenticate(
    parts: &Parts,
    state: &AppState,
    accept: Accept,
) -> Result<Principal, ApiError> {
    let presented = bearer_token(&parts.headers)?;
    let client_ip = crate::client_address::of(parts);
    let Verified { credential, rate } = state.verifier.verify(presented, client_ip, accept).await?;
    // Outside `with_rate_limit_headers` (in tests of handlers alone) there is no response to
    // add headers to, nor a refusal to refund.
    if rate.is_some() {
        let _ = SPENDING.try_with(|spending| spending.borrow_mut().rate = rate);
    }
    // The API's own requests cost 1; forward authentication spends its rule's cost.
    if accept == Accept::Any
        && let Some(Credited { charges, .. }) = spend_credits(state, &credential, 1, None).await?
    {
        note_charges(charges);
    }
    Ok(Principal::new(credential))
}

/// Keeps what a request spent, to put back if it is refused afterwards or never served (see
/// [`with_rate_limit_headers`]).
pub(crate) fn note_charges(charges: Vec<Charge>) {
    let _ = SPENDING.try_with(|spending| spending.borrow_mut().charges.extend(charges));
}

/// On a response to a request that was allowed but never served (the gateway's upstream
/// never got it: no connection could be made, or the body announced was over the limit):
/// the credits the request spent go back.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NotServed;

/// Runs a request so that the credential's rate-limit state reaches its response headers,
/// and the credits it spent go back if it is refused afterwards for a scope it lacks, or
/// never served ([`NotServed`]).
pub async fn with_rate_limit_headers(response: impl Future<Output = Response>) -> Response {
    let (mut response, spending) = SPENDING
        .scope(RefCell::default(), async {
            let response = response.await;
            (response, SPENDING.with(RefCell::take))
        })
        .await;
    let extensions = response.extensions();
    if extensions.get::<crate::error::ScopeRefusal>().is_some()
        || extensions.get::<NotServed>().is_some()
    {
        for charge in spending.charges {
            charge.refund();
        }
    }
    if let Some(rate) = spending.rate {
        crate::rate_limit::add_headers(response.headers_mut(), &rate);
    }
    response
}

const NOT_VALID: &str = "the key is not valid";
const SUSPENDED: &str =
    "the key's organization is suspended: its keys work again if the platform resumes it";

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Malformed(error) => {
                ApiError::InvalidToken(format!("the key is malformed: {error}"))
            }
            Refusal::NotFound | Refusal::Revoked => ApiError::InvalidToken(NOT_VALID.into()),
            Refusal::Expired(at) => ApiError::InvalidToken(format!("the key expired at {at}")),
            Refusal::RateLimited(status) => ApiError::RateLimited(status),
            Refusal::IpNotAllowed(address) => ApiError::IpNotAllowed(address),
            Refusal::Suspended => ApiError::OrganizationSuspended(SUSPENDED),
            Refusal::Unavailable => ApiError::Unavailable,
            Refusal::Internal => ApiError::Internal("key verification failed".into()),
        }
    }
}

/// The token of `Authorization: Bearer <token>` (RFC 6750 §2.1).
pub(crate) fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(ApiError::MissingCredentials);
    };
    if values.next().is_some() {
        return Err(ApiError::InvalidRequest(
            "send one Authorization header, not several",
        ));
    }
    let value = value.to_str().map_err(|_| {
        ApiError::InvalidRequest("the Authorization header must be printable ASCII")
    })?;
    let (scheme, credentials) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::MissingCredentials);
    }
    let token = credentials.trim_matches(' ');
    if token.is_empty() {
        return Err(ApiError::InvalidRequest(
            "the Authorization header has the Bearer scheme but no key",
        ));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(
                header::AUTHORIZATION,
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn bearer_tokens_are_taken_from_one_header() {
        assert_eq!(bearer_token(&headers(&[b"Bearer abc"])).unwrap(), "abc");
        assert_eq!(bearer_token(&headers(&[b"bearer  abc "])).unwrap(), "abc");
        assert!(matches!(
            bearer_token(&headers(&[])),
            Err(ApiError::MissingCredentials)
        ));
        assert!(matches!(
            bearer_token(&headers(&[b"Basic dXNlcjpwYXNz"])),
            Err(ApiError::MissingCredentials)
        ));
        for empty in [&b"Bearer"[..], b"Bearer ", b"Bearer    "] {
            assert!(matches!(
                bearer_token(&headers(&[empty])),
                Err(ApiError::InvalidRequest(_))
            ));
        }
        assert!(matches!(
            bearer_token(&headers(&[b"Bearer a", b"Bearer b"])),
            Err(ApiError::InvalidRequest(_))
        ));
        assert!(matches!(
            bearer_token(&headers(&[b"Bearer \xff\xfe"])),
            Err(ApiError::InvalidRequest(_))
        ));
    }

    fn principal(project: Option<ProjectId>, scopes: &[&str]) -> Principal {
        let kind = if project.is_some() {
            CredentialKind::ProjectToken
        } else {
            CredentialKind::ApiKey
        };
        let record = keyward_store::CredentialRecord {
            id: CredentialId::generate(kind),
            digest: keyward_core::KeyDigest::of("test"),
            organization_id: OrganizationId::generate(),
            project_id: project,
            name: keyward_core::Name::parse("test").unwrap(),
            hint: String::new(),
            scopes: keyward_core::ScopeNames::from_storage(&scopes.join(" ")).unwrap(),
            created_at: Timestamp::now(),
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
            rate_limit: None,
            allowed_cidrs: None,
            created_by_user: None,
            rotated_from: None,
            rotation: None,
            exposure: None,
            metadata: keyward_core::Metadata::default(),
            organization_suspended: false,
            credits: None,
            identity_limits: None,
        };
        Principal::new(Arc::new(CachedCredential::from_record(
            record,
            Timestamp::now(),
            &ScopeCatalog::builtin(),
        )))
    }

    #[test]
    fn principals_need_every_scope_they_use() {
        let key = principal(None, &["instances:read", "api_keys:write"]);
        assert!(key.require(Scope::INSTANCES_READ).is_ok());
        let Err(ApiError::InsufficientScope { scope, .. }) = key.require(Scope::INSTANCES_WRITE)
        else {
            panic!("instances:write must be refused");
        };
        assert_eq!(scope, "instances:write");
    }

    #[test]
    fn project_tokens_are_confined_whatever_their_stored_scopes() {
        let own = ProjectId::generate();
        // A token row that somehow holds organization scopes still cannot use them.
        let token = principal(
            Some(own),
            &["instances:read", "api_keys:read", "tokens:write"],
        );
        assert!(token.require(Scope::INSTANCES_READ).is_ok());
        assert!(token.require(Scope::API_KEYS_READ).is_err());
        assert!(token.require(Scope::TOKENS_WRITE).is_err());
        assert_eq!(token.reach(), Reach::Project(own));
        let key = principal(None, &["instances:read"]);
        assert_eq!(key.reach(), Reach::Organization);
    }
}
