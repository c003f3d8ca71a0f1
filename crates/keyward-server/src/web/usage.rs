//! Usage drawn for the dashboard: charts of verifications stacked by outcome, drawn on the
//! server (SVG, so they need no JavaScript) with the same numbers in a table beside them, and
//! the small 7-day sparklines of the keys list; and Settings > Usage, the organization's.

use std::fmt::Write as _;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use keyward_core::{CredentialKind, Scope};

use crate::AppState;
use crate::services::usage::{self, Bucket, Granularity, Period, Usage};
use crate::web::page::Layout;
use crate::web::response::{WebError, render};
use crate::web::session::Person;

const OUTCOMES: [(&str, &str); 9] = [
    ("allowed", "#2f7d32"),
    ("rate_limited", "#d97706"),
    ("credits_exhausted", "#ca8a04"),
    ("insufficient_scope", "#7c3aed"),
    ("forbidden", "#be185d"),
    ("ip_not_allowed", "#0e7490"),
    ("revoked", "#b3261e"),
    ("expired", "#8a6d00"),
    ("organization_suspended", "#6b7280"),
];
/// Any outcome a later change adds.
const OTHER: &str = "#374151";

fn colour(outcome: &str) -> &'static str {
    OUTCOMES
        .iter()
        .find(|(name, _)| *name == outcome)
        .map_or(OTHER, |(_, colour)| colour)
}

/// `outcomes` in stacking order: the known ones first, then any other by name.
fn in_stacking_order<'o>(outcomes: impl IntoIterator<Item = &'o String>) -> Vec<String> {
    let present: std::collections::BTreeSet<&String> = outcomes.into_iter().collect();
    let mut ordered: Vec<String> = OUTCOMES
        .iter()
        .filter(|(name, _)| present.iter().any(|o| o == name))
        .map(|(name, _)| (*name).to_owned())
        .collect();
    ordered.extend(
        present
            .into_iter()
            .filter(|name| !OUTCOMES.iter().any(|(known, _)| known == name))
            .cloned(),
    );
    ordered
}

/// The outcomes `usage` has, in stacking order.
fn outcomes_of(usage: &Usage) -> Vec<String> {
    in_stacking_order(usage.totals().keys())
}

const WIDTH: u64 = 720;
const HEIGHT: u64 = 160;
const LEFT: u64 = 48;
const BOTTOM: u64 = 20;

/// The chart of `usage`'s buckets, `label` naming a bucket (for the x axis, every
/// `label_every` bucket, and for each bar's tooltip). Only numbers and Keyward's own words
/// go into it.
fn chart(
    usage: &Usage,
    id: &str,
    caption: &str,
    label: fn(&Bucket) -> String,
    label_every: usize,
) -> String {
    let outcomes = outcomes_of(usage);
    let busiest = usage
        .buckets
        .iter()
        .map(Bucket::total)
        .max()
        .unwrap_or(0)
        .max(1);
    let count = u64::try_from(usage.buckets.len().max(1)).unwrap_or(1);
    let plot = HEIGHT - BOTTOM;
    let slot = (WIDTH - LEFT) as f64 / count as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" class=\"usage-chart\" role=\"img\" aria-labelledby=\"{id}-title\"><title id=\"{id}-title\">{caption}</title>"
    );
    // The axis: its top value, and a base line.
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"10\" text-anchor=\"end\" font-size=\"10\" fill=\"#555\">{busiest}</text><text x=\"{}\" y=\"{plot}\" text-anchor=\"end\" font-size=\"10\" fill=\"#555\">0</text><line x1=\"{LEFT}\" y1=\"{plot}\" x2=\"{WIDTH}\" y2=\"{plot}\" stroke=\"#999\"/>",
        LEFT - 4,
        LEFT - 4
    );
    for (index, bucket) in usage.buckets.iter().enumerate() {
        let x = LEFT as f64 + slot * index as f64;
        let width = (slot - 1.0).max(1.0);
        let mut base = plot as f64;
        let mut tip = format!("{}: {}", label(bucket), bucket.total());
        for outcome in &outcomes {
            let Some(&n) = bucket.outcomes.get(outcome) else {
                continue;
            };
            let _ = write!(tip, ", {outcome} {n}");
            let height = n as f64 * plot as f64 / busiest as f64;
            base -= height;
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{base:.1}\" width=\"{width:.1}\" height=\"{height:.1}\" fill=\"{}\"/>",
                colour(outcome)
            );
        }
        // A transparent bar the whole height, for the tooltip.
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"0\" width=\"{width:.1}\" height=\"{plot}\" fill=\"transparent\"><title>{tip}</title></rect>"
        );
        if index % label_every == 0 {
            let _ = write!(
                svg,
                "<text x=\"{x:.1}\" y=\"{}\" font-size=\"10\" fill=\"#555\">{}</text>",
                HEIGHT - 6,
                label(bucket)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

pub(in crate::web) fn day(bucket: &Bucket) -> String {
    bucket.start.to_string()[5..10].to_owned()
}

pub(in crate::web) fn hour(bucket: &Bucket) -> String {
    let text = bucket.start.to_string();
    format!("{} {}", &text[5..10], &text[11..16])
}

pub(in crate::web) struct Row {
    pub(in crate::web) label: String,
    pub(in crate::web) total: u64,
    /// The count of each outcome of the legend, in its order.
    pub(in crate::web) counts: Vec<u64>,
}

pub(in crate::web) struct Section {
    pub(in crate::web) heading: &'static str,
    pub(in crate::web) id: &'static str,
    pub(in crate::web) svg: String,
    pub(in crate::web) legend: Vec<(String, &'static str)>,
    pub(in crate::web) rows: Vec<Row>,
    pub(in crate::web) total: u64,
}

fn section(
    usage: &Usage,
    heading: &'static str,
    id: &'static str,
    label: fn(&Bucket) -> String,
    label_every: usize,
) -> Section {
    let outcomes = outcomes_of(usage);
    let caption = format!("{heading}: verifications stacked by outcome");
    Section {
        heading,
        id,
        svg: chart(usage, id, &caption, label, label_every),
        legend: outcomes.iter().map(|o| (o.clone(), colour(o))).collect(),
        rows: usage
            .buckets
            .iter()
            .rev()
            .map(|bucket| Row {
                label: label(bucket),
                total: bucket.total(),
                counts: outcomes
                    .iter()
                    .map(|o| bucket.outcomes.get(o).copied().unwrap_or(0))
                    .collect(),
            })
            .collect(),
        total: usage.buckets.iter().map(Bucket::total).sum(),
    }
}

/// `usage`'s named routes, busiest first, and the outcomes they had in stacking order.
fn routes_of(usage: &Usage) -> (Vec<String>, Vec<Row>) {
    let outcomes = in_stacking_order(usage.routes.values().flat_map(|route| route.keys()));
    let mut rows: Vec<Row> = usage
        .routes
        .iter()
        .map(|(name, counts)| Row {
            label: name.clone(),
            total: counts.values().sum(),
            counts: outcomes
                .iter()
                .map(|o| counts.get(o).copied().unwrap_or(0))
                .collect(),
        })
        .collect();
    rows.sort_by(|a, b| b.total.cmp(&a.total).then(a.label.cmp(&b.label)));
    (outcomes, rows)
}

/// What a usage page shows: a chart and table per period, and the first period by route.
pub(in crate::web) struct Charts {
    pub(in crate::web) sections: Vec<Section>,
    /// The first period by named route rule (forward authentication's), with the outcomes
    /// they had: empty when no named rule was matched.
    pub(in crate::web) route_outcomes: Vec<String>,
    pub(in crate::web) routes: Vec<Row>,
}

/// The charts of the last 30 days by day and the last 48 hours by hour.
pub(in crate::web) fn charts(days: &Usage, hours: &Usage) -> Charts {
    let (route_outcomes, routes) = routes_of(days);
    Charts {
        sections: vec![
            section(days, "Last 30 days, by day (UTC)", "days", day, 5),
            section(hours, "Last 48 hours, by hour (UTC)", "hours", hour, 8),
        ],
        route_outcomes,
        routes,
    }
}

/// A credential's last 7 days for the keys list: the total, and a sparkline of its days.
pub(in crate::web) struct Sparkline {
    pub total: u64,
    /// Refused among them.
    pub refused: u64,
    /// An SVG of one bar a day, allowed and refused stacked; only numbers go into it.
    pub svg: String,
    /// The same days in words, for a screen reader.
    pub label: String,
}

/// Days in a sparkline.
pub(in crate::web) const SPARKLINE_DAYS: i64 = 7;

impl Sparkline {
    pub(in crate::web) fn of(usage: &Usage) -> Self {
        const BAR: u64 = 8;
        const HIGH: u64 = 18;
        let busiest = usage.buckets.iter().map(Bucket::total).max().unwrap_or(0);
        let width = BAR * u64::try_from(usage.buckets.len()).unwrap_or(0);
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"sparkline\" width=\"{width}\" height=\"{HIGH}\" viewBox=\"0 0 {width} {HIGH}\" aria-hidden=\"true\">"
        );
        // A base line, so that days without use still show as days.
        let _ = write!(
            svg,
            "<line x1=\"0\" y1=\"{HIGH}\" x2=\"{width}\" y2=\"{HIGH}\" stroke=\"#c4c9d0\"/>"
        );
        let mut days = Vec::with_capacity(usage.buckets.len());
        for (index, bucket) in (0u64..).zip(&usage.buckets) {
            let total = bucket.total();
            let allowed = bucket.outcomes.get("allowed").copied().unwrap_or(0);
            days.push(total.to_string());
            if total == 0 {
                continue;
            }
            // At least a pixel for a day with any use.
            let height = (total * HIGH).div_ceil(busiest.max(1)).max(1);
            let refused = (total - allowed) * height / total;
            let x = index * BAR;
            // Allowed at the bottom, refused on top, as the charts stack them.
            let _ = write!(
                svg,
                "<rect x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"/>",
                HIGH - height + refused,
                BAR - 2,
                height - refused,
                colour("allowed")
            );
            if refused > 0 {
                let _ = write!(
                    svg,
                    "<rect x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{refused}\" fill=\"{}\"/>",
                    HIGH - height,
                    BAR - 2,
                    colour("revoked")
                );
            }
        }
        svg.push_str("</svg>");
        let totals = usage.totals();
        let total = totals.values().sum::<u64>();
        Self {
            total,
            refused: total - totals.get("allowed").copied().unwrap_or(0),
            svg,
            label: format!("by day, oldest first: {}", days.join(", ")),
        }
    }
}

/// One of the organization's most used credentials on Settings > Usage.
struct TopRow {
    name: String,
    kind: &'static str,
    /// Its own usage page (none for an installation's admin key).
    url: Option<String>,
    total: u64,
    refused: u64,
}

#[derive(Template)]
#[template(path = "usage.html")]
struct OrganizationUsagePage {
    layout: Layout,
    charts: Charts,
    top: Vec<TopRow>,
}

/// Credentials listed as the most used.
const TOP: usize = 10;

/// Settings > Usage: the organization's keys and tokens together, charted like one key's,
/// with the ten most used of the last 30 days.
pub(in crate::web) async fn organization(
    State(state): State<AppState>,
    person: Person,
) -> Result<Response, WebError> {
    person.require(Scope::API_KEYS_READ)?;
    let caller = person.caller(&state);
    let now = state.config.clock.now();
    let recent = |granularity| Period::recent(granularity, now);
    let days = usage::of_organization(&state, &caller, recent(Granularity::Day), None, TOP).await?;
    let hours = usage::of_organization(&state, &caller, recent(Granularity::Hour), None, 0).await?;
    let top = days
        .top
        .iter()
        .map(|credential| {
            let total = credential.total();
            let id = credential.credential;
            let (kind, url) = match (credential.project, id.kind()) {
                (Some(project), _) => (
                    "Project token",
                    Some(format!("/settings/projects/{project}/tokens/{id}/usage")),
                ),
                (None, CredentialKind::AdminKey) => ("Admin key", None),
                (None, _) => ("API key", Some(format!("/settings/api-keys/{id}/usage"))),
            };
            TopRow {
                name: credential.name.clone(),
                kind,
                url,
                total,
                refused: total - credential.outcomes.get("allowed").copied().unwrap_or(0),
            }
        })
        .collect();
    let page = OrganizationUsagePage {
        layout: Layout::new(&state, &person, "usage").await?,
        charts: charts(&days.usage, &hours.usage),
        top,
    };
    Ok(render(StatusCode::OK, &page))
}
