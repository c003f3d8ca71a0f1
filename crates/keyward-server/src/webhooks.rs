//! Sending webhooks: the delivery loop, the expiry scanner, and the address checks that keep
//! an endpoint URL from reaching the installation's own network (server-side request
//! forgery).
//!
//! Every node runs both loops. A delivery is claimed by one node at a time (see
//! `Store::claim_webhook_deliveries`), and each is sent on its own task: a slow or hanging
//! receiver holds at most the deliveries [`IN_FLIGHT`] allows and delays nobody else's. An
//! expiry notice is written once whatever the nodes.
//! Delivery is at least once: a node that dies after sending but before recording the answer
//! leaves the delivery to be sent again when its lease ends, with the same `webhook-id`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyward_core::Timestamp;
use keyward_core::webhook::SigningKey;
use keyward_store::{AttemptRecord, ClaimedDelivery, InFlightLimits, NextStep};

use crate::AppState;

/// How long one attempt may take, connection included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claimed delivery is this node's: well past an attempt's timeout.
const LEASE_SECONDS: i64 = 120;
/// Deliveries claimed in one transaction.
const CLAIM_BATCH: i64 = 32;
/// Deliveries one node sends at once.
const MAX_IN_FLIGHT: usize = 128;
/// Deliveries in flight at once for one endpoint, and for all the endpoints of one
/// organization: a receiver that hangs holds 4 of a node's places (each for up to
/// [`ATTEMPT_TIMEOUT`]), an organization whose every endpoint hangs 16 of its 128, and
/// neither delays anybody else.
pub const IN_FLIGHT: InFlightLimits = InFlightLimits {
    per_endpoint: 4,
    per_organization: 16,
};
/// Expiry notices written per transaction.
const SCAN_BATCH: i64 = 500;
/// Largest part of an answer kept in the attempt log's error column.
const MAX_ERROR: usize = 200;

/// The retries of Standard Webhooks' recommended schedule: 5 seconds, 5 minutes, 30
/// minutes, 2 hours, 5 hours, 10 hours and 10 hours after each failure, so a message is
/// tried for 27 h 35 min before it is given up.
pub const RETRY_DELAYS: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(300),
    Duration::from_secs(1_800),
    Duration::from_secs(7_200),
    Duration::from_secs(18_000),
    Duration::from_secs(36_000),
    Duration::from_secs(36_000),
];

/// Whether an address is one a webhook may be sent to: a public unicast address. Loopback,
/// private, link-local, unique-local, shared (CGNAT), unspecified, multicast, broadcast,
/// documentation and benchmarking ranges are not, nor IPv6 forms of IPv4 ones.
pub fn is_public(address: IpAddr) -> bool {
    match address.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || (a == 192 && b == 88 && v4.octets()[2] == 99)
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            // Forms that carry an IPv4 address in their last 32 bits: NAT64 (64:ff9b::/96
            // and the local-use 64:ff9b:1::/48), IPv4-compatible (::/96) and SIIT
            // (::ffff:0:0/96). They are as public as that address.
            let embedded = segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
                || segments[..3] == [0x64, 0xff9b, 1]
                || segments[..6] == [0, 0, 0, 0, 0, 0]
                || segments[..6] == [0, 0, 0, 0, 0xffff, 0];
            if embedded && !v6.is_loopback() && !v6.is_unspecified() {
                let v4 = (u32::from(segments[6]) << 16) | u32::from(segments[7]);
                return is_public(IpAddr::V4(v4.into()));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (segments[0] & 0xfe00) == 0xfc00
                || (segments[0] & 0xffc0) == 0xfe80
                || (segments[0] & 0xffc0) == 0xfec0
                || segments[0] == 0x2001 && segments[1] == 0
                || segments[..4] == [0x100, 0, 0, 0]
                || segments[0] == 0x2001 && segments[1] == 0x0db8
                || segments[0] == 0x2002)
        }
    }
}

/// The one refusal of a destination, whatever the reason: it does not resolve, or it resolves
/// to an address that is not public.
const NOT_PUBLIC: &str = "must be a host with public addresses only: it does not resolve, or \
     resolves to a loopback, private or link-local address (an operator may allow private \
     networks with --webhooks-allow-private-networks)";

/// Why an endpoint URL is refused.
pub fn check_url(text: &str) -> Result<url::Url, String> {
    if text.len() > 2048 {
        return Err("must be at most 2048 characters".into());
    }
    let url = url::Url::parse(text).map_err(|e| format!("is not a URL ({e})"))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err("must be an https:// (or http://) URL".into());
    }
    if url.host().is_none() {
        return Err("must name a host".into());
    }
    if url.fragment().is_some() {
        return Err("must not have a #fragment".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        // It would be stored, listed and written in the audit log in the clear.
        return Err(
            "must not carry a user name or password; authenticate the messages by their \
             signature"
                .into(),
        );
    }
    if url.as_str().len() > 2048 {
        return Err("must be at most 2048 characters once encoded".into());
    }
    Ok(url)
}

/// The addresses `url`'s host resolves to, all of which must be public unless `allow_private`.
pub async fn resolve_checked(
    url: &url::Url,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, String> {
    let port = url.port_or_known_default().unwrap_or(443);
    let addresses: Vec<SocketAddr> = match url.host() {
        Some(url::Host::Ipv4(v4)) => vec![SocketAddr::new(IpAddr::V4(v4), port)],
        Some(url::Host::Ipv6(v6)) => vec![SocketAddr::new(IpAddr::V6(v6), port)],
        Some(url::Host::Domain(name)) => {
            let lookup = tokio::net::lookup_host((name, port));
            match tokio::time::timeout(Duration::from_secs(5), lookup).await {
                Ok(Ok(found)) => found.collect(),
                Ok(Err(_)) => return Err(NOT_PUBLIC.into()),
                Err(_) => return Err(format!("the host {name} took too long to resolve")),
            }
        }
        None => return Err("must name a host".into()),
    };
    if addresses.is_empty() {
        return Err(NOT_PUBLIC.into());
    }
    if !allow_private && let Some(private) = addresses.iter().find(|a| !is_public(a.ip())) {
        // Which address, and whether a name resolves at all, stay in the server's log: an
        // answer must not map the installation's own network for whoever asks.
        tracing::debug!(address = %private.ip(), "refused a webhook destination");
        return Err(NOT_PUBLIC.into());
    }
    Ok(addresses)
}

/// Resolves a delivery's host and hands the HTTP client only addresses that passed the
/// check, so the address connected to is the address checked (no second lookup that a
/// rebinding DNS server could answer differently).
struct CheckedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let url = url::Url::parse(&format!("http://{host}/"))?;
            let addresses = resolve_checked(&url, allow_private).await?;
            // Port 0: the connector puts in the URL's port, or the scheme's (443 for https);
            // any other port here would replace the scheme's default.
            let addresses = addresses
                .into_iter()
                .map(|address| SocketAddr::new(address.ip(), 0));
            Ok(Box::new(addresses) as reqwest::dns::Addrs)
        })
    }
}

/// The client deliveries are sent with: no redirects followed (a redirect could point
/// anywhere), no proxy from the environment, a timeout per attempt.
pub fn client(allow_private: bool) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(ATTEMPT_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("Keyward-Webhooks/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(CheckedResolver { allow_private }))
        .build()
}

/// What follows attempt number `attempts` (counting this one) that failed.
fn after_failure(delays: &[Duration], attempts: u32, now: Timestamp) -> NextStep {
    match delays.get(attempts.saturating_sub(1) as usize) {
        Some(delay) => NextStep::RetryAt(
            now.plus_seconds(
                i64::try_from(delay.as_secs())
                    .unwrap_or(i64::MAX / 2)
                    .max(0),
            ),
        ),
        None => NextStep::GiveUp,
    }
}

/// Sends one claimed delivery and records the attempt.
async fn deliver(
    state: &AppState,
    client: &reqwest::Client,
    key: &SigningKey,
    delivery: ClaimedDelivery,
) {
    let now = state.config.clock.now();
    let secret = key.secret_for(delivery.endpoint_id);
    if secret.check_value() != delivery.secret_check {
        tracing::error!(
            endpoint = %delivery.endpoint_id,
            "this node's webhook signing key is not the one the endpoint was registered with; \
             leaving the delivery to another node (every node needs the same --webhooks-key-file)"
        );
        let attempt = AttemptRecord {
            attempted_at: now,
            status: None,
            latency_ms: 0,
            error: None,
        };
        let release = NextStep::Release(now.plus_seconds(60));
        let _ = state
            .store
            .finish_webhook_delivery(&delivery, &attempt, release)
            .await;
        return;
    }
    let message_id = delivery.message_id.to_string();
    // The one reading of the system's time outside the clock: the receiver checks this
    // against its own clock, so it is the real time even when a test moves this node's.
    let timestamp = Timestamp::now().unix_seconds();
    let body = delivery.payload.as_bytes().to_vec();
    let signature = secret.sign(&message_id, timestamp, &body);
    let started = Instant::now();
    let outcome = match literal_address_refused(
        &delivery.url,
        state.config.webhooks_allow_private_networks,
    ) {
        Some(refused) => Err(refused),
        None => client
            .post(&delivery.url)
            .header("content-type", "application/json")
            .header("webhook-id", &message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|error| describe(&error)),
    };
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let attempts = delivery.attempts + 1;
    let (status, error, next) = match outcome {
        Ok(response) if response.status().is_success() => {
            (Some(response.status().as_u16()), None, NextStep::Delivered)
        }
        Ok(response) => {
            let status = response.status().as_u16();
            let next = after_failure(&state.config.webhook_retry_delays, attempts, now);
            (Some(status), None, next)
        }
        Err(error) => {
            let next = after_failure(&state.config.webhook_retry_delays, attempts, now);
            (None, Some(error), next)
        }
    };
    let attempt = AttemptRecord {
        attempted_at: now,
        status,
        latency_ms,
        error,
    };
    if let Err(error) = state
        .store
        .finish_webhook_delivery(&delivery, &attempt, next)
        .await
    {
        // The lease ends and another attempt follows: at least once, same webhook-id.
        tracing::warn!(%error, "could not record a webhook attempt; it will be sent again");
    }
}

/// A URL whose host is a literal address is not resolved: check it here.
fn literal_address_refused(url: &str, allow_private: bool) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    let address = match url.host()? {
        url::Host::Ipv4(v4) => IpAddr::V4(v4),
        url::Host::Ipv6(v6) => IpAddr::V6(v6),
        url::Host::Domain(_) => return None,
    };
    (!allow_private && !is_public(address))
        .then(|| format!("refused: {address} is not a public address"))
}

/// A failed attempt in words, without the URL (which may carry a token of the receiver's).
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "the request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let said = cause.to_string();
        if said == NOT_PUBLIC {
            text = format!("refused: {said}");
            break;
        }
        source = cause.source();
    }
    text.chars().take(MAX_ERROR).collect()
}

/// The deliveries this node is sending, each on its own task.
#[derive(Default)]
struct InFlight {
    tasks: tokio::task::JoinSet<()>,
    claimed: HashMap<tokio::task::Id, ClaimedDelivery>,
}

impl InFlight {
    /// Claims due deliveries while there is room, and starts sending each at once.
    async fn claim_and_send(
        &mut self,
        state: &AppState,
        client: &reqwest::Client,
        key: &Arc<SigningKey>,
    ) {
        loop {
            let room = MAX_IN_FLIGHT.saturating_sub(self.tasks.len());
            if room == 0 {
                return;
            }
            let now = state.config.clock.now();
            let limit = i64::try_from(room).unwrap_or(CLAIM_BATCH).min(CLAIM_BATCH);
            let claimed = match state
                .store
                .claim_webhook_deliveries(now, LEASE_SECONDS, limit, IN_FLIGHT)
                .await
            {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::warn!(%error, "could not claim webhook deliveries; will retry");
                    return;
                }
            };
            if claimed.is_empty() {
                return;
            }
            for delivery in claimed {
                let (state, client, key) = (state.clone(), client.clone(), key.clone());
                let task = delivery.clone();
                let id = self
                    .tasks
                    .spawn(async move { deliver(&state, &client, &key, task).await })
                    .id();
                self.claimed.insert(id, delivery);
            }
        }
    }

    /// Forgets a delivery whose task ended: it recorded its attempt (or left its lease to
    /// run out, if it could not).
    fn finished(&mut self, ended: Result<tokio::task::Id, tokio::task::JoinError>) {
        let id = match ended {
            Ok(id) => id,
            Err(error) => error.id(),
        };
        self.claimed.remove(&id);
    }

    /// Stops every send under way and gives their deliveries back, due at once for any node,
    /// rather than leaving them leased for minutes after a restart. A receiver that already
    /// got one gets it again, with the same `webhook-id`: delivery is at least once.
    async fn release(mut self, state: &AppState) {
        self.tasks.abort_all();
        while let Some(ended) = self.tasks.join_next_with_id().await {
            if let Ok((id, ())) = ended {
                // It ended on its own, its attempt recorded.
                self.claimed.remove(&id);
            }
        }
        let unfinished: Vec<ClaimedDelivery> = self.claimed.into_values().collect();
        if unfinished.is_empty() {
            return;
        }
        match state.store.release_webhook_deliveries(&unfinished).await {
            Ok(()) => tracing::info!(
                deliveries = unfinished.len(),
                "gave back webhook deliveries under way at shutdown"
            ),
            Err(error) => tracing::warn!(
                %error,
                "could not give back webhook deliveries at shutdown; they go when their lease ends"
            ),
        }
    }
}

/// Delivers due webhooks until `stop` says so, then gives back what is under way. It claims
/// whenever it has room: at every poll interval and as soon as a send ends, never waiting for
/// one send before starting another; each endpoint and organization has at most what
/// [`IN_FLIGHT`] allows in flight.
pub async fn deliver_until(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let Some(key) = state.config.webhook_signing_key.clone() else {
        return;
    };
    let client = match client(state.config.webhooks_allow_private_networks) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot make the webhook HTTP client; webhooks are not sent");
            return;
        }
    };
    let mut ticker = tokio::time::interval(state.config.webhook_poll_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut in_flight = InFlight::default();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            Some(ended) = in_flight.tasks.join_next_with_id(), if !in_flight.tasks.is_empty() => {
                in_flight.finished(ended.map(|(id, ())| id));
            }
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        in_flight.claim_and_send(&state, &client, &key).await;
    }
    in_flight.release(&state).await;
}

/// Writes the expiry notices now due; returns how many.
pub async fn scan_expiring(state: &AppState) -> Result<u64, keyward_store::StoreError> {
    let now = state.config.clock.now();
    let mut total = 0;
    loop {
        let sent = state
            .store
            .scan_expiring_credentials(now, SCAN_BATCH, state.config.smtp.is_some())
            .await?;
        total += sent;
        if sent < SCAN_BATCH as u64 {
            return Ok(total);
        }
    }
}

/// Scans for expiring credentials every scan interval, until the task is aborted.
pub async fn scan_periodically(state: AppState) {
    let mut ticker = tokio::time::interval(state.config.expiry_scan_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match scan_expiring(&state).await {
            Ok(0) => {}
            Ok(notices) => tracing::info!(notices, "expiry notices written"),
            Err(error) => tracing::warn!(%error, "could not scan for expiring keys; will retry"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
            "ff02::1",
            "::7f00:1",
            "::ffff:0:7f00:1",
            "64:ff9b:1::a00:1",
            "fec0::1",
            "2001::1",
            "100::1",
            "192.0.0.8",
            "192.88.99.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "8.8.8.8",
            "203.0.114.1",
            "2606:4700::1111",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn urls_are_checked() {
        assert!(check_url("https://hooks.example.com/x?y=1").is_ok());
        for bad in [
            "ftp://example.com/",
            "not a url",
            "https://",
            "https://e.com/#f",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        assert!(check_url(&format!("https://e.com/{}", "a".repeat(2048))).is_err());
        // Short as typed, longer once percent-encoded.
        assert!(check_url(&format!("https://e.com/{}", "é".repeat(700))).is_err());
        let refused = check_url("https://user:secret@e.com/hook").unwrap_err();
        assert!(refused.contains("user name or password"), "{refused}");
    }

    #[tokio::test]
    async fn private_destinations_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1:9/",
            "http://[::1]/",
            "http://localhost/",
            "http://10.0.0.1/",
        ] {
            let url = url::Url::parse(url).unwrap();
            let refused = resolve_checked(&url, false).await.unwrap_err();
            assert!(refused.contains("private"), "{url}: {refused}");
            assert!(resolve_checked(&url, true).await.is_ok(), "{url}");
        }
    }

    #[tokio::test]
    async fn the_resolver_leaves_the_port_to_the_url() {
        use reqwest::dns::Resolve;
        let resolver = CheckedResolver {
            allow_private: true,
        };
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let addresses: Vec<SocketAddr> = resolver.resolve(name).await.unwrap().collect();
        assert!(!addresses.is_empty());
        assert!(
            addresses
                .iter()
                .all(|a| a.port() == 0 && a.ip().is_loopback())
        );
        let refusing = CheckedResolver {
            allow_private: false,
        };
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        assert!(refusing.resolve(name).await.is_err());
    }

    #[test]
    fn retries_follow_the_schedule_then_stop() {
        let now = Timestamp::from_unix_seconds(1_000);
        assert_eq!(
            after_failure(&RETRY_DELAYS, 1, now),
            NextStep::RetryAt(Timestamp::from_unix_seconds(1_005))
        );
        assert_eq!(
            after_failure(&RETRY_DELAYS, 7, now),
            NextStep::RetryAt(Timestamp::from_unix_seconds(37_000))
        );
        assert_eq!(after_failure(&RETRY_DELAYS, 8, now), NextStep::GiveUp);
        let total: u64 = RETRY_DELAYS.iter().map(Duration::as_secs).sum();
        assert!(total >= 24 * 3600, "retried for at least a day");
    }
}
