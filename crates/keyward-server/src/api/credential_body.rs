//! The body of `POST /v1/api-keys` and `POST /v1/projects/{project_id}/tokens`.

use keyward_core::{
    CredentialId, CredentialKind, CreditSettings, Every, Metadata, Networks, ProjectId, RateLimit,
    Refill, Timestamp,
};
use keyward_store::{CredentialChanges, CredentialFilter, CreditChange, Page};
use serde::Deserialize;

use crate::AppState;
use crate::error::{ApiError, validate};
use crate::field_error::FieldError;
use crate::pagination::page_from;
use crate::services::credentials::{
    CredentialInput, parse_expiry, parse_external_id, parse_meta, parse_name, parse_scopes,
};

/// `limit`, `cursor` and `external_id` of a list of keys or tokens.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CredentialListQuery {
    /// Items per page, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only those with this external id.
    #[param(min_length = 1, max_length = 255, example = "user_8412")]
    pub external_id: Option<String>,
}

impl CredentialListQuery {
    /// Which credentials of `kind` (of `project`, if tokens) to list, and the page.
    pub fn parse(
        self,
        kind: CredentialKind,
        project: Option<ProjectId>,
    ) -> Result<(CredentialFilter, Page), ApiError> {
        let page = page_from(self.limit, self.cursor.as_deref(), |text| {
            CredentialId::parse(text, kind).ok().map(|id| id.as_uuid())
        })?;
        let external_id = self
            .external_id
            .as_deref()
            .map(parse_external_id)
            .transpose()
            .map_err(|e| ApiError::Validation(vec![e]))?;
        let filter = CredentialFilter {
            kind,
            project,
            external_id,
        };
        Ok((filter, page))
    }
}

/// `{name, scopes, expires_at?, rate_limit?, allowed_cidrs?, external_id?, meta?}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCredential {
    /// 1 to 100 characters after trimming, no control characters.
    #[schema(
        example = "CI/CD Pipeline",
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: String,
    /// At least one; each must be held by the calling key.
    #[schema(value_type = Vec<crate::services::schema::ScopeName>, min_items = 1)]
    pub scopes: Vec<String>,
    /// RFC 3339, in the future; required (and no later than its own) when the calling key
    /// expires.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<String>,
    /// Optional; required, and no looser than its own, when the calling key is rate-limited.
    #[serde(default)]
    #[schema(value_type = Option<crate::services::schema::RateLimitSchema>)]
    pub rate_limit: Option<RateLimit>,
    /// Optional: the IPv4 and IPv6 ranges (`192.0.2.0/24`, `2001:db8::/32`, or single
    /// addresses) it may be used from, 1 to 64; any address when absent. Required, and
    /// inside its own, when the calling key is limited to networks.
    #[serde(default)]
    #[schema(example = json!(["192.0.2.0/24", "2001:db8::/32"]), min_items = 1, max_items = 64)]
    pub allowed_cidrs: Option<Vec<String>>,
    /// Optional: the platform's id for whoever uses it (a user, a service account), 1 to 255
    /// printable ASCII characters; not unique. Not for secrets: stored and returned as given.
    #[serde(default)]
    #[schema(example = "user_8412", min_length = 1, max_length = 255)]
    pub external_id: Option<String>,
    /// Optional: a JSON object of at most 1 KiB (as compact JSON) given back wherever the key
    /// is checked (verification, introspection, forward authentication). Not for secrets:
    /// stored and returned as given.
    #[serde(default)]
    #[schema(value_type = Option<Object>, example = json!({"plan": "pro"}))]
    pub meta: Option<serde_json::Value>,
    /// Optional: calls it may make, each allowed request spending 1 (or a route rule's
    /// `cost`), refilled to `refill.amount` at each day's or month's start (UTC) if given.
    /// Without it, no limit.
    #[serde(default)]
    #[schema(value_type = Option<crate::services::schema::CreditsSchema>)]
    pub credits: Option<CreditsBody>,
}

/// `{remaining, refill?}` sets credits; in a `PATCH`, `{add}` adds to what is left instead
/// (its schema is `services::schema::CreditsSchema`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditsBody {
    #[serde(default)]
    pub remaining: Option<i64>,
    #[serde(default)]
    pub refill: Option<RefillBody>,
    #[serde(default)]
    pub add: Option<i64>,
}

/// `{amount, every: "day" | "month", on_day?}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefillBody {
    pub amount: i64,
    pub every: Every,
    #[serde(default)]
    pub on_day: Option<u8>,
}

impl CreditsBody {
    /// Credits to set: `remaining`, with `refill` if given (`add` belongs to a `PATCH`).
    pub(crate) fn settings(&self) -> Result<CreditSettings, FieldError> {
        let invalid = |message: &str| FieldError::new("credits", message);
        if self.add.is_some() {
            return Err(invalid(
                "`add` adds to a credential's credits in a PATCH; give `remaining` to set them",
            ));
        }
        let remaining = self
            .remaining
            .ok_or_else(|| invalid("give `remaining`, the calls it may make"))?;
        let refill = self
            .refill
            .as_ref()
            .map(|refill| Refill::new(refill.amount, refill.every, refill.on_day))
            .transpose()
            .map_err(|e| invalid(e.0))?;
        CreditSettings::new(remaining, refill).map_err(|e| invalid(e.0))
    }

    /// A change: `{add}` alone, or credits to set.
    fn change(&self) -> Result<CreditChange, FieldError> {
        match self.add {
            Some(add) if self.remaining.is_none() && self.refill.is_none() => {
                if (1..=keyward_core::credits::MAX_CREDITS).contains(&add) {
                    Ok(CreditChange::Add(add))
                } else {
                    Err(FieldError::new(
                        "credits",
                        "`add` must be 1 to 1000000000000",
                    ))
                }
            }
            Some(_) => Err(FieldError::new(
                "credits",
                "send `add` alone, or `remaining` (and `refill`) to set them",
            )),
            None => self
                .settings()
                .map(|settings| CreditChange::Set(Some(settings))),
        }
    }
}

/// `{name?, rate_limit?, allowed_cidrs?, external_id?, meta?, credits?}`, at least one;
/// `"rate_limit": null` removes the limit, `"allowed_cidrs": null` allows every address again,
/// and `null` removes an external id or meta.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCredential {
    #[serde(default)]
    #[schema(
        example = "Renamed",
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: Option<String>,
    /// A key cannot change its own limit; a rate-limited key sets only limits within its own.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<crate::services::schema::RateLimitSchema>)]
    pub rate_limit: Option<Option<RateLimit>>,
    /// A key cannot change its own networks; a key limited to networks sets only ranges
    /// inside its own.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>, example = json!(["192.0.2.0/24"]))]
    pub allowed_cidrs: Option<Option<Vec<String>>>,
    /// 1 to 255 printable ASCII characters; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "user_8412", min_length = 1, max_length = 255)]
    pub external_id: Option<Option<String>>,
    /// A JSON object of at most 1 KiB; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>, example = json!({"plan": "pro"}))]
    pub meta: Option<Option<serde_json::Value>>,
    /// `{remaining, refill?}` sets the credits (what nodes hold in leases no longer counts);
    /// `{add}` adds to what is left; `null` removes them (no limit). A key cannot change its
    /// own credits.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<crate::services::schema::CreditsPatchSchema>)]
    pub credits: Option<Option<CreditsBody>>,
}

/// Tells a field sent as `null` (`Some(None)`) from one left out (`None`, by default).
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Ranges from a body, checked.
fn parse_networks(ranges: Option<&[String]>) -> Result<Option<Networks>, FieldError> {
    ranges
        .map(Networks::parse)
        .transpose()
        .map_err(|e| FieldError::new("allowed_cidrs", e))
}

/// A limit from a body, checked: serde reads the numbers, this checks their range.
fn check_rate_limit(limit: Option<RateLimit>) -> Result<Option<RateLimit>, FieldError> {
    limit
        .map(|l| RateLimit::new(l.requests, l.per_seconds))
        .transpose()
        .map_err(|e| FieldError::new("rate_limit", e))
}

impl UpdateCredential {
    pub fn parse(self) -> Result<CredentialChanges, ApiError> {
        if self.name.is_none()
            && self.rate_limit.is_none()
            && self.allowed_cidrs.is_none()
            && self.external_id.is_none()
            && self.meta.is_none()
            && self.credits.is_none()
        {
            return Err(ApiError::invalid(
                "name",
                "send at least one of name, rate_limit, allowed_cidrs, external_id, meta and \
                 credits",
            ));
        }
        let name = self.name.as_deref().map(parse_name).transpose();
        let rate_limit = self.rate_limit.map(check_rate_limit).transpose();
        let allowed_cidrs = self
            .allowed_cidrs
            .map(|ranges| parse_networks(ranges.as_deref()))
            .transpose();
        let external_id = self
            .external_id
            .map(|id| id.as_deref().map(parse_external_id).transpose())
            .transpose();
        let meta = self
            .meta
            .map(|meta| meta.as_ref().map(parse_meta).transpose())
            .transpose();
        let credits = self
            .credits
            .map(|credits| match credits {
                None => Ok(CreditChange::Set(None)),
                Some(body) => body.change(),
            })
            .transpose();
        validate!(name, rate_limit, allowed_cidrs, external_id, meta, credits);
        Ok(CredentialChanges {
            name,
            rate_limit,
            allowed_cidrs,
            external_id,
            meta,
            credits,
        })
    }
}

/// `{grace_seconds, expires_at?}`: how long the old credential keeps working, 0 to 604800
/// (7 days), and the new one's expiry if not the old one's.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateCredential {
    #[schema(minimum = 0, maximum = 604800, example = 86400)]
    pub grace_seconds: i64,
    /// The new credential's expiry (RFC 3339, in the future); the old one's when absent.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<String>,
}

impl RotateCredential {
    /// The new expiry, if one is given: it must lie in the future.
    pub fn expiry(&self, state: &AppState) -> Result<Option<Timestamp>, ApiError> {
        parse_expiry(self.expires_at.as_deref(), state.config.clock.now())
            .map_err(|e| ApiError::Validation(vec![e]))
    }
}

impl CreateCredential {
    /// Validates every field, reporting all invalid ones at once: scopes against the catalog
    /// in force, an expiry against the time now (it must lie ahead).
    pub fn parse(self, state: &AppState) -> Result<CredentialInput, ApiError> {
        let now = state.config.clock.now();
        let name = parse_name(&self.name);
        let scopes = parse_scopes(&state.config.scopes, &self.scopes);
        let expires_at = parse_expiry(self.expires_at.as_deref(), now);
        let rate_limit = check_rate_limit(self.rate_limit);
        let allowed_cidrs = parse_networks(self.allowed_cidrs.as_deref());
        let external_id = self
            .external_id
            .as_deref()
            .map(parse_external_id)
            .transpose();
        let meta = self.meta.as_ref().map(parse_meta).transpose();
        let credits = self.credits.as_ref().map(CreditsBody::settings).transpose();
        validate!(
            name,
            scopes,
            expires_at,
            rate_limit,
            allowed_cidrs,
            external_id,
            meta,
            credits
        );
        Ok(CredentialInput {
            name,
            scopes,
            expires_at,
            rate_limit,
            allowed_cidrs,
            metadata: Metadata { external_id, meta },
            credits,
        })
    }
}
