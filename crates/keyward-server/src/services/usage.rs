//! A credential's usage: its verifications by hour or day and outcome, from the hourly counts
//! every node adds to with its last-use batch (so at most one flush period late, 5 s by
//! default), kept `--usage-retention-days`.

use std::collections::BTreeMap;

use keyward_core::{CredentialId, ProjectId, Timestamp};

use super::ServiceError;
use super::caller::Caller;
use crate::AppState;
use crate::field_error::FieldError;

const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

/// How counts are grouped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Granularity {
    Hour,
    Day,
}

impl Granularity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    fn seconds(self) -> i64 {
        match self {
            Self::Hour => HOUR,
            Self::Day => DAY,
        }
    }

    /// The most buckets one answer has: 31 days of hours, 400 days.
    fn most(self) -> i64 {
        match self {
            Self::Hour => 31 * 24,
            Self::Day => 400,
        }
    }

    /// The start of the bucket `at` is in (days in UTC).
    fn floor(self, at: i64) -> i64 {
        at - at.rem_euclid(self.seconds())
    }

    /// How far back a period goes by default: 48 hours by the hour, 30 days by the day.
    fn default_span(self) -> i64 {
        match self {
            Self::Hour => 48 * HOUR,
            Self::Day => 30 * DAY,
        }
    }
}

/// A period of whole buckets, `from` included and `to` not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub from: Timestamp,
    pub to: Timestamp,
    pub granularity: Granularity,
}

impl Period {
    /// The default period up to `now`: its bucket and those before, over the default span.
    pub fn recent(granularity: Granularity, now: Timestamp) -> Self {
        let to = granularity.floor(now.unix_seconds()) + granularity.seconds();
        Self {
            from: Timestamp::from_unix_seconds(to - granularity.default_span()),
            to: Timestamp::from_unix_seconds(to),
            granularity,
        }
    }

    /// The last `days` days up to `now`, today included, by the day.
    pub fn last_days(days: i64, now: Timestamp) -> Self {
        let to = Granularity::Day.floor(now.unix_seconds()) + DAY;
        Self {
            from: Timestamp::from_unix_seconds(to - days * DAY),
            to: Timestamp::from_unix_seconds(to),
            granularity: Granularity::Day,
        }
    }

    /// From the query's `from`, `to` (RFC 3339) and `granularity` (`hour` or `day`, the
    /// default): both ends rounded out to whole buckets; `to` defaults to the end of the
    /// current bucket, `from` to 30 days (48 hours by the hour) before it.
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        granularity: Option<&str>,
        now: Timestamp,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let granularity = match granularity.unwrap_or("day") {
            "day" => Granularity::Day,
            "hour" => Granularity::Hour,
            _ => {
                errors.push(FieldError::new("granularity", "must be hour or day"));
                Granularity::Day
            }
        };
        let mut time = |field: &'static str, raw: Option<&str>| {
            raw.and_then(|raw| match Timestamp::parse(raw) {
                Ok(at) => Some(at.unix_seconds()),
                Err(_) => {
                    errors.push(FieldError::new(
                        field,
                        "must be an RFC 3339 time such as 2026-12-01T00:00:00Z",
                    ));
                    None
                }
            })
        };
        let to_given = time("to", to);
        let from_given = time("from", from);
        let size = granularity.seconds();
        // Rounded out: `to` up to the end of its bucket, `from` down to its start.
        let to = granularity.floor(to_given.map_or(now.unix_seconds(), |to| to - 1)) + size;
        let from = granularity.floor(from_given.unwrap_or(to - granularity.default_span()));
        if errors.is_empty() {
            if from >= to {
                errors.push(FieldError::new("from", "must be before `to`"));
            } else if (to - from) / size > granularity.most() {
                errors.push(FieldError::new(
                    "from",
                    format!(
                        "a period has at most {} {}s: ask for days, or a shorter period",
                        granularity.most(),
                        granularity.as_str()
                    ),
                ));
            }
        }
        if errors.is_empty() {
            Ok(Self {
                from: Timestamp::from_unix_seconds(from),
                to: Timestamp::from_unix_seconds(to),
                granularity,
            })
        } else {
            Err(errors)
        }
    }
}

/// One bucket: its start, and its verifications by outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bucket {
    pub start: Timestamp,
    pub outcomes: BTreeMap<String, u64>,
}

impl Bucket {
    pub fn total(&self) -> u64 {
        self.outcomes.values().sum()
    }
}

/// Usage over a period (of a credential, or of a whole organization): every bucket, empty
/// ones too, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Usage {
    pub credential: Option<CredentialId>,
    pub period: Period,
    /// The one named route rule the buckets count (`None`: every verification).
    pub route: Option<String>,
    pub buckets: Vec<Bucket>,
    /// The period's verifications by named route rule (forward authentication's) and
    /// outcome, whichever route the buckets count.
    pub routes: BTreeMap<String, BTreeMap<String, u64>>,
}

impl Usage {
    /// The period's verifications by outcome.
    pub fn totals(&self) -> BTreeMap<String, u64> {
        let mut totals = BTreeMap::new();
        for bucket in &self.buckets {
            for (outcome, count) in &bucket.outcomes {
                *totals.entry(outcome.clone()).or_default() += count;
            }
        }
        totals
    }
}

impl Usage {
    /// Rows of hourly counts over `period`: in its buckets those of `route` (all when
    /// `None`), and every named route's totals.
    fn of_rows(
        credential: Option<CredentialId>,
        period: Period,
        route: Option<&str>,
        rows: Vec<keyward_store::UsageRow>,
    ) -> Self {
        let mut routes: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for row in &rows {
            if let Some(name) = &row.route
                && row.count > 0
            {
                let outcomes = routes.entry(name.clone()).or_default();
                *outcomes.entry(row.outcome.clone()).or_default() += row.count;
            }
        }
        let counted = rows
            .into_iter()
            .filter(|row| route.is_none() || row.route.as_deref() == route)
            .collect();
        Self {
            credential,
            period,
            route: route.map(str::to_owned),
            buckets: buckets(period, counted),
            routes,
        }
    }
}

/// Rows of hourly counts spread into every bucket of `period`, oldest first.
fn buckets(period: Period, rows: Vec<keyward_store::UsageRow>) -> Vec<Bucket> {
    let size = period.granularity.seconds();
    let from = period.from.unix_seconds();
    let mut buckets: Vec<Bucket> = (from..period.to.unix_seconds())
        .step_by(usize::try_from(size).unwrap_or(usize::MAX))
        .map(|start| Bucket {
            start: Timestamp::from_unix_seconds(start),
            outcomes: BTreeMap::new(),
        })
        .collect();
    for row in rows {
        let index = usize::try_from((row.hour.unix_seconds() - from) / size).unwrap_or(usize::MAX);
        if let Some(bucket) = buckets.get_mut(index)
            && row.count > 0
        {
            *bucket.outcomes.entry(row.outcome).or_default() += row.count;
        }
    }
    buckets
}

/// One credential among an organization's most used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialTotals {
    pub credential: CredentialId,
    /// A project token's project.
    pub project: Option<ProjectId>,
    pub name: String,
    pub outcomes: BTreeMap<String, u64>,
}

impl CredentialTotals {
    pub fn total(&self) -> u64 {
        self.outcomes.values().sum()
    }
}

/// An organization's usage over a period: all its credentials' together, and the most used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrganizationUsage {
    pub usage: Usage,
    /// The `top` credentials with the most verifications, most first.
    pub top: Vec<CredentialTotals>,
}

/// The organization's usage over `period` (of the named route rule `route` alone, if
/// given), with its `top` most used credentials.
pub async fn of_organization(
    state: &AppState,
    caller: &Caller,
    period: Period,
    route: Option<&str>,
    top: usize,
) -> Result<OrganizationUsage, ServiceError> {
    let organization = caller.organization_id;
    let rows = state
        .store
        .organization_usage(organization, period.from, period.to)
        .await?;
    let mut each: BTreeMap<CredentialId, CredentialTotals> = BTreeMap::new();
    for row in state
        .store
        .usage_by_credential(organization, period.from, period.to)
        .await?
    {
        if row.count == 0 {
            continue;
        }
        let entry = each
            .entry(row.credential)
            .or_insert_with(|| CredentialTotals {
                credential: row.credential,
                project: row.project,
                name: row.name.as_str().to_owned(),
                outcomes: BTreeMap::new(),
            });
        *entry.outcomes.entry(row.outcome).or_default() += row.count;
    }
    let mut ranked: Vec<CredentialTotals> = each.into_values().collect();
    ranked.sort_by(|a, b| {
        b.total()
            .cmp(&a.total())
            .then(a.credential.cmp(&b.credential))
    });
    ranked.truncate(top);
    Ok(OrganizationUsage {
        usage: Usage::of_rows(None, period, route, rows),
        top: ranked,
    })
}

/// The usage of the credential `id` (of `project`, if a token) over `period`, of the named
/// route rule `route` alone if given.
pub async fn of_credential(
    state: &AppState,
    caller: &Caller,
    id: CredentialId,
    project: Option<ProjectId>,
    period: Period,
    route: Option<&str>,
) -> Result<Usage, ServiceError> {
    super::credentials::show(state, caller, id, project).await?;
    of_shown(state, caller, id, period, route).await
}

/// The usage of the credential `id` over `period` (of `route` alone, if given), once
/// [`super::credentials::show`] has found it within the caller's reach.
pub async fn of_shown(
    state: &AppState,
    caller: &Caller,
    id: CredentialId,
    period: Period,
    route: Option<&str>,
) -> Result<Usage, ServiceError> {
    let rows = state
        .store
        .credential_usage(caller.organization_id, id, period.from, period.to)
        .await?;
    Ok(Usage::of_rows(Some(id), period, route, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_whole_buckets_within_bounds() {
        let now = Timestamp::parse("2026-12-05T10:20:00Z").unwrap();
        let day = Period::parse(None, None, None, now).unwrap();
        assert_eq!(Period::recent(Granularity::Day, now), day);
        assert_eq!(
            Period::recent(Granularity::Hour, now),
            Period::parse(None, None, Some("hour"), now).unwrap()
        );
        assert_eq!(day.to, Timestamp::parse("2026-12-06T00:00:00Z").unwrap());
        assert_eq!(day.from, Timestamp::parse("2026-11-06T00:00:00Z").unwrap());
        assert_eq!(Period::last_days(30, now), day);
        assert_eq!(
            Period::last_days(7, now).from,
            Timestamp::parse("2026-11-29T00:00:00Z").unwrap()
        );
        let hours = Period::parse(
            Some("2026-12-05T08:30:00Z"),
            Some("2026-12-05T10:00:00Z"),
            Some("hour"),
            now,
        )
        .unwrap();
        assert_eq!(
            hours.from,
            Timestamp::parse("2026-12-05T08:00:00Z").unwrap()
        );
        assert_eq!(hours.to, Timestamp::parse("2026-12-05T10:00:00Z").unwrap());
        let fields = |result: Result<Period, Vec<FieldError>>| {
            result
                .unwrap_err()
                .into_iter()
                .map(|e| e.field)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            fields(Period::parse(None, None, Some("week"), now)),
            ["granularity"]
        );
        assert_eq!(
            fields(Period::parse(Some("soon"), None, None, now)),
            ["from"]
        );
        assert_eq!(
            fields(Period::parse(
                Some("2026-12-05T00:00:00Z"),
                Some("2026-12-01T00:00:00Z"),
                None,
                now
            )),
            ["from"]
        );
        assert_eq!(
            fields(Period::parse(
                Some("2026-01-01T00:00:00Z"),
                None,
                Some("hour"),
                now
            )),
            ["from"]
        );
    }
}
