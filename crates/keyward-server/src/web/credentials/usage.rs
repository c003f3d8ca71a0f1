//! A key's or token's usage page: its last 30 days by day and its last 48 hours by hour, each
//! as a chart drawn on the server (SVG, so it needs no JavaScript) of verifications stacked by
//! outcome, with the same numbers in a table beside it.

use std::fmt::Write as _;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use keyward_core::{CredentialKind, Scope};

use super::Target;
use crate::AppState;
use crate::services::usage::{self, Bucket, Granularity, Period, Usage};
use crate::web::page::Layout;
use crate::web::response::{WebError, render};

/// Outcomes in the order they stack (allowed at the bottom), with their colours.
const OUTCOMES: [(&str, &str); 7] = [
    ("allowed", "#2f7d32"),
    ("rate_limited", "#d97706"),
    ("insufficient_scope", "#7c3aed"),
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

/// The outcomes `usage` has, in stacking order.
fn outcomes_of(usage: &Usage) -> Vec<String> {
    let totals = usage.totals();
    let mut known: Vec<String> = OUTCOMES
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .filter(|name| totals.contains_key(name))
        .collect();
    known.extend(
        totals
            .keys()
            .filter(|name| !OUTCOMES.iter().any(|(known, _)| known == name))
            .cloned(),
    );
    known
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

fn day(bucket: &Bucket) -> String {
    bucket.start.to_string()[5..10].to_owned()
}

fn hour(bucket: &Bucket) -> String {
    let text = bucket.start.to_string();
    format!("{} {}", &text[5..10], &text[11..16])
}

struct Row {
    label: String,
    total: u64,
    /// The count of each outcome of the legend, in its order.
    counts: Vec<u64>,
}

struct Section {
    heading: &'static str,
    id: &'static str,
    svg: String,
    legend: Vec<(String, &'static str)>,
    rows: Vec<Row>,
    total: u64,
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

#[derive(Template)]
#[template(path = "credential_usage.html")]
struct UsagePage {
    layout: Layout,
    title: String,
    list_url: String,
    sections: Vec<Section>,
}

pub(in crate::web) async fn usage(
    State(state): State<AppState>,
    target: Target,
) -> Result<Response, WebError> {
    let Target { person, place, .. } = &target;
    person.require(match place.kind {
        CredentialKind::ProjectToken => Scope::TOKENS_READ,
        _ => Scope::API_KEYS_READ,
    })?;
    // Found within the person's reach once; both periods are then read for it.
    let entry = target.entry(&state).await?;
    let caller = person.caller(&state);
    let now = state.config.clock.now();
    let id = entry.view.id;
    let days = usage::of_shown(&state, &caller, id, Period::recent(Granularity::Day, now)).await?;
    let hours =
        usage::of_shown(&state, &caller, id, Period::recent(Granularity::Hour, now)).await?;
    let page = UsagePage {
        layout: Layout::new(&state, person, place.section()).await?,
        title: format!("Usage of {}", entry.view.name),
        list_url: place.url(),
        sections: vec![
            section(&days, "Last 30 days, by day (UTC)", "days", day, 5),
            section(&hours, "Last 48 hours, by hour (UTC)", "hours", hour, 8),
        ],
    };
    Ok(render(axum::http::StatusCode::OK, &page))
}
