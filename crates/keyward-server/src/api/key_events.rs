//! `GET /v1/keys/events`: the changes that verification of the caller's organization's keys
//! must follow, as Server-Sent Events, for services that keep their own caches of verified
//! keys (the `keyward-verify` crate, or any SSE client).
//!
//! Each change is one `key` event whose `id` is its number in the key-event log, which
//! increases in the order the changes committed, on every node alike: a client that
//! reconnects with `Last-Event-ID` (to this node or another) is sent every change after it.
//! A client whose id the log no longer reaches (it keeps a day) or never had is sent `reset`
//! first: it must drop everything it cached. `ready` says the stream has caught up.
//!
//! The stream ends when the server stops, when its node loses the database (it would hear of
//! no change meanwhile), when the caller's own key changes (the event is sent first;
//! reconnecting authenticates again; an admin key acting for the organization has its
//! changes logged for the installation, which end the stream without an event), and when the
//! caller's key stops working (expired, or rotated and past its grace period).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use keyward_core::{CredentialId, OrganizationId, Scope, Timestamp};
use keyward_store::{Invalidation, KeyEventRecord};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use utoipa_axum::routes;

use super::ApiRoutes;
use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::ApiQuery;

pub fn router() -> ApiRoutes {
    ApiRoutes::new().routes(routes!(key_events))
}

/// Events read from the log at a time.
const PAGE: i64 = 100;
/// How often an idle stream sends a comment, so that proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long a stream waits before reading again after the database failed.
const RETRY: Duration = Duration::from_secs(1);
/// How often an idle stream checks that its node still has the database.
const DATABASE_CHECK: Duration = Duration::from_millis(500);

/// Where to start, for a client that cannot send `Last-Event-ID` (the header wins).
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct EventsQuery {
    /// The last event id the client has seen, as `Last-Event-ID` would send it.
    #[param(example = "1024")]
    last_event_id: Option<String>,
}

/// The data of a `key` event.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct KeyEvent {
    /// The event's number in the log (also its SSE `id`).
    #[schema(example = 1025)]
    id: i64,
    /// The key or token that changed: a cache forgets what it holds for it.
    #[schema(value_type = String, example = "key_0190a0c2b4a87bb2a1f8e3c27c1d9e0f")]
    key_id: CredentialId,
    /// What happened: `revoked`, `rotated`, `changed` (scopes, expiry, limits, networks or
    /// details), `suspension` (its organization was suspended or resumed) or
    /// `identity_limits` (the limits its identity shares changed).
    #[schema(example = "revoked")]
    change: &'static str,
    #[schema(value_type = String, format = DateTime)]
    at: Timestamp,
}

/// The data of `ready` and `reset` events.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct StreamPosition {
    /// The id the stream is at (also the event's SSE `id`).
    #[schema(example = 1024)]
    last_event_id: i64,
    /// For `reset`: why the client must drop its cache, `pruned` (its id is older than the
    /// log keeps) or `unknown` (the log never had its id).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "pruned")]
    reason: Option<&'static str>,
}

/// Follow changes to the organization's keys
///
/// A Server-Sent Events stream (`text/event-stream`) of every change that verification of
/// the organization's keys must follow: `key` events, numbered in commit order on every
/// node. Reconnect with `Last-Event-ID` to be sent what was missed; `reset` means drop the
/// whole cache (the id is older than the day the log keeps, or unknown); `ready` means the
/// stream has caught up. It ends when the caller's own key changes or expires.
#[utoipa::path(
    get, path = "/v1/keys/events", tag = "Verification",
    params(
        EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "The last event id seen"),
    ),
    responses((
        status = 200,
        description = "The stream: `key` events (data `KeyEvent`), `ready` and `reset` (data \
                       `StreamPosition`), and comments to keep it open",
        content_type = "text/event-stream",
        body = String,
    )),
    security(("bearer" = ["keys:verify"]))
)]
pub(super) async fn key_events(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    query: Result<ApiQuery<EventsQuery>, ApiError>,
) -> Result<Response, ApiError> {
    principal.require(Scope::KEYS_VERIFY)?;
    let ApiQuery(query) = query?;
    let after = match headers.get("last-event-id") {
        Some(value) => Some(parse_id(value.to_str().unwrap_or("-"), "Last-Event-ID")?),
        None => query
            .last_event_id
            .as_deref()
            .map(|id| parse_id(id, "last_event_id"))
            .transpose()?,
    };
    let Some(wakes) = state.store.invalidations() else {
        return Err(ApiError::Internal("this store sends no key events".into()));
    };
    // Woken from now on, then read: a change committed in between is read, or woken for.
    let organization = principal.organization_id;
    let bounds = state.store.key_events(organization, 0, 0).await?;
    let (position, reset) = match after {
        None => (bounds.latest, None),
        Some(id) if id < bounds.pruned_through => (bounds.latest, Some("pruned")),
        Some(id) if id > bounds.latest => (bounds.latest, Some("unknown")),
        Some(id) => (id, None),
    };
    let (sender, receiver) = mpsc::channel(PAGE as usize);
    if let Some(reason) = reset {
        let reset = position_event("reset", position, Some(reason));
        let _ = sender.try_send(reset);
    }
    // A key rotated away ends with its grace period, before any expiry of its own.
    let until = principal.credential.usable_until().map(|at| {
        let left = at.unix_seconds() - state.config.clock.now().unix_seconds();
        Duration::from_secs(u64::try_from(left).unwrap_or(0))
    });
    // A key acting for another organization (an admin key) has its own changes logged in its
    // own organization's log: that one is followed too, for the caller's changes only.
    let home = principal.credential.organization_id;
    let home = if home == organization {
        None
    } else {
        Some((home, state.store.key_events(home, 0, 0).await?.latest))
    };
    let stream = Stream {
        state,
        organization,
        caller: principal.credential_id,
        home,
        position,
        ready: false,
        sender,
    };
    tokio::spawn(stream.follow(wakes, until));
    let events = ReceiverStream::new(receiver).map(Ok::<_, Infallible>);
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    // Proxies that buffer answers (nginx) would hold events back.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

fn parse_id(id: &str, field: &'static str) -> Result<i64, ApiError> {
    id.trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(|| ApiError::invalid(field, "must be an event id this stream sent"))
}

fn position_event(name: &'static str, position: i64, reason: Option<&'static str>) -> Event {
    let data = StreamPosition {
        last_event_id: position,
        reason,
    };
    Event::default()
        .event(name)
        .id(position.to_string())
        .json_data(data)
        .unwrap_or_default()
}

fn key_event(event: &KeyEventRecord) -> Event {
    let data = KeyEvent {
        id: event.id,
        key_id: event.credential_id,
        change: event.change.as_str(),
        at: event.at,
    };
    Event::default()
        .event("key")
        .id(event.id.to_string())
        .json_data(data)
        .unwrap_or_default()
}

/// One client's stream: what it has been sent, and where to send more.
struct Stream {
    state: AppState,
    organization: OrganizationId,
    caller: CredentialId,
    /// For a caller acting for another organization: its own organization, and the position
    /// in that log after which a change to the caller's key ends the stream.
    home: Option<(OrganizationId, i64)>,
    position: i64,
    /// Whether `ready` was sent: the stream caught up once, and reads every change as it is
    /// told of it from then on.
    ready: bool,
    sender: mpsc::Sender<Event>,
}

/// Whether a stream goes on after sending what it read.
enum Next {
    Wait,
    End,
}

impl Stream {
    /// Sends what the log holds after the position, then what each wake-up brings, until the
    /// client goes, the server stops, or the caller's key changes or expires.
    async fn follow(
        mut self,
        mut wakes: broadcast::Receiver<Invalidation>,
        until: Option<Duration>,
    ) {
        let mut stopping = self.state.stopping.subscribe();
        let expired = async {
            match until {
                Some(left) => tokio::time::sleep(left).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(expired);
        let mut read = true;
        let mut home_changed = self.home.is_some();
        loop {
            let mut retry = false;
            if home_changed {
                match self.caller_changed_at_home().await {
                    Ok(true) => return,
                    Ok(false) => {}
                    Err(error) => {
                        tracing::debug!(%error, "key events could not be read; retrying");
                        retry = true;
                    }
                }
            }
            if read {
                match self.catch_up().await {
                    Ok(Next::End) => return,
                    Ok(Next::Wait) if !self.ready => {
                        self.ready = true;
                        let event = position_event("ready", self.position, None);
                        if self.sender.send(event).await.is_err() {
                            return;
                        }
                    }
                    Ok(Next::Wait) => {}
                    Err(error) => {
                        tracing::debug!(%error, "key events could not be read; retrying");
                        retry = true;
                    }
                }
            }
            let home = self.home.map(|(home, _)| home);
            home_changed = retry && home.is_some();
            read = tokio::select! {
                wake = wakes.recv() => match wake {
                    // A read that failed is tried again whatever wakes the stream.
                    Ok(Invalidation::KeyEvents(organization)) => {
                        home_changed |= home == Some(organization);
                        retry || organization == self.organization
                    }
                    Ok(Invalidation::ForgetAll) | Err(broadcast::error::RecvError::Lagged(_)) => {
                        home_changed = home.is_some();
                        true
                    }
                    Ok(Invalidation::Forget(_)) => retry,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                () = tokio::time::sleep(RETRY), if retry => true,
                // A node that lost the database hears of no change: its streams end, and
                // their clients stop trusting what they cached until they are caught up again.
                () = tokio::time::sleep(DATABASE_CHECK) => {
                    if self.state.store.state().down_for.is_some() {
                        return;
                    }
                    retry
                }
                () = self.sender.closed() => return,
                _ = stopping.wait_for(|stopping| *stopping) => return,
                () = &mut expired => return,
            };
        }
    }

    /// Whether the caller's own organization has logged a change to the caller's key since
    /// the stream began (or last looked): its changes are not this stream's events, and end
    /// it as they would in the organization's own.
    async fn caller_changed_at_home(&mut self) -> Result<bool, keyward_store::StoreError> {
        let Some((home, mut position)) = self.home else {
            return Ok(false);
        };
        loop {
            let page = self.state.store.key_events(home, position, PAGE).await?;
            if page
                .events
                .iter()
                .any(|event| event.credential_id == self.caller)
            {
                return Ok(true);
            }
            // (Pruning past the position is no sign of a missed change: every change logged
            // here wakes the stream, which looks at once, and a missed wake-up is a lag or a
            // lost notification, which makes it look too; pruning takes a day. Other
            // organizations' events are pruned past a quiet stream's position all the time.)
            position = page.events.last().map_or(position, |event| event.id);
            if page.events.len() as i64 == PAGE {
                self.home = Some((home, position));
                continue;
            }
            // A page that is not full read every event up to the log's latest (read before
            // them): the position moves there, so that pruning other organizations' events
            // does not pass it while the caller's own log is quiet.
            self.home = Some((home, position.max(page.latest)));
            return Ok(false);
        }
    }

    /// Sends every event after the position, page by page.
    async fn catch_up(&mut self) -> Result<Next, keyward_store::StoreError> {
        loop {
            let page = self
                .state
                .store
                .key_events(self.organization, self.position, PAGE)
                .await?;
            let full = page.events.len() as i64 == PAGE;
            // Pruned past the position while catching up (a client at the edge of the
            // retention): what it missed is gone, so it drops everything. Once caught up, the
            // stream reads each change as it is told of it, long before a day's pruning: the
            // log pruned past a quiet organization's position (other organizations' events)
            // is no sign of a missed change, and dropping every cache for it would be a
            // needless storm of verifications.
            if !self.ready && page.pruned_through > self.position {
                self.position = page.latest.max(page.pruned_through);
                let reset = position_event("reset", self.position, Some("pruned"));
                if self.sender.send(reset).await.is_err() {
                    return Ok(Next::End);
                }
                continue;
            }
            for event in &page.events {
                if self.sender.send(key_event(event)).await.is_err() {
                    return Ok(Next::End);
                }
                self.position = event.id;
                if event.credential_id == self.caller {
                    return Ok(Next::End);
                }
            }
            if !full {
                return Ok(Next::Wait);
            }
        }
    }
}
