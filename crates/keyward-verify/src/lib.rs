//! Verify Keyward keys inside a Rust service, at memory speed, while still seeing every
//! revocation within milliseconds.
//!
//! A [`Verifier`] asks Keyward once per key (`POST /v1/keys/verify`, with a key holding
//! `keys:verify`), keeps the answer in the service's memory, and follows Keyward's stream of
//! changes (`GET /v1/keys/events`) to forget a key the moment it is revoked, rotated or
//! changed anywhere in the cluster:
//!
//! - Entries are keyed by the SHA-256 of the key (the key itself is never kept), last at most
//!   `max_age` (and never past the key's expiry), and refusals that cannot change (revoked,
//!   expired) are kept for `negative_age`. For a few seconds after a key changes, its answers
//!   are not kept at all: the Keyward node that answers may not have heard of the change yet.
//! - Answers are cached only while the stream is caught up. When it drops, the cache is
//!   dropped with it, and every request is verified by Keyward until the stream is back
//!   (it reconnects with `Last-Event-ID`, so nothing is missed).
//! - Keys whose every use Keyward must count (a rate limit, credits, an identity's limits) or
//!   that are limited to networks are never cached: Keyward answers for each request, so
//!   their limits hold exactly as on Keyward's own API.
//!
//! [`VerifyLayer`] (a tower layer) checks the `Authorization: Bearer` key of every request
//! and refuses as Keyward's API does; handlers take the [`Caller`] extractor and call
//! [`Identity::require`] for the scope they need.

mod layer;
mod stream;

pub mod example;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use sha2::{Digest, Sha256};

pub use keyward_core::Cidr;
pub use layer::{Caller, VerifyLayer, VerifyService};

/// How long after a change to a key its answers are not kept: long enough for every Keyward
/// node to have forgotten it too, so that an answer asked for just after the change (from a
/// node that has not heard yet) is never kept.
const SETTLING: Duration = Duration::from_secs(5);
/// Past this many entries, expired ones are swept before another is added.
const SWEEP_AT: usize = 10_000;
/// The most entries kept; past it (after a sweep) new answers are not kept.
const MAX_ENTRIES: usize = 100_000;

/// Where Keyward is and how long answers are kept.
#[derive(Clone)]
pub struct VerifierConfig {
    /// Keyward's base URL, such as `https://keys.example.com`.
    pub keyward_url: String,
    /// A key of the organization holding `keys:verify`.
    pub verify_key: String,
    /// The longest a valid answer is kept (it is forgotten sooner when the key changes).
    pub max_age: Duration,
    /// How long a revoked or expired key is remembered as such (unknown keys are not: any
    /// string could be sent).
    pub negative_age: Duration,
    /// How long a call to Keyward may take.
    pub timeout: Duration,
}

impl std::fmt::Debug for VerifierConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierConfig")
            .field("keyward_url", &self.keyward_url)
            .field("verify_key", &"…")
            .field("max_age", &self.max_age)
            .field("negative_age", &self.negative_age)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl VerifierConfig {
    pub fn new(keyward_url: impl Into<String>, verify_key: impl Into<String>) -> Self {
        Self {
            keyward_url: keyward_url.into().trim_end_matches('/').to_owned(),
            verify_key: verify_key.into(),
            max_age: Duration::from_secs(60),
            negative_age: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
        }
    }
}

/// Who is calling: what Keyward said of a valid key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub key_id: String,
    /// `api_key` or `project_token`.
    pub kind: String,
    pub organization_id: String,
    /// For a project token, the one project it may act on.
    pub project_id: Option<String>,
    pub scopes: Vec<String>,
    /// RFC 3339, when the key stops working.
    pub expires_at: Option<String>,
    pub external_id: Option<String>,
    pub meta: Option<serde_json::Value>,
}

impl Identity {
    /// Whether the key holds `scope`; a refusal answers 403 `insufficient_scope`.
    pub fn require(&self, scope: &str) -> Result<(), Refusal> {
        match self.scopes.iter().any(|held| held == scope) {
            true => Ok(()),
            false => Err(Refusal::InsufficientScope(scope.to_owned())),
        }
    }

    /// Whether the key may act on `project`: any project of its organization for an API
    /// key, its own for a project token.
    pub fn reaches(&self, project: &str) -> bool {
        self.project_id.as_deref().is_none_or(|own| own == project)
    }
}

/// Why a request is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization: Bearer` key (401).
    MissingKey,
    /// Keyward refused the key: `NOT_FOUND`, `REVOKED`, `EXPIRED` (401),
    /// `ORGANIZATION_SUSPENDED`, `IP_NOT_ALLOWED` (403), `RATE_LIMITED`, `CREDITS_EXHAUSTED`
    /// (429, with the seconds to wait when known).
    Refused {
        code: String,
        retry_after: Option<u64>,
    },
    /// The key lacks this scope (403).
    InsufficientScope(String),
    /// The key may not do this, whatever its scopes, for the reason given (403), such as a
    /// project token used for another project.
    Forbidden(String),
    /// Keyward could not be asked (503): the request is refused, never let through.
    Unavailable,
}

/// What the cache holds for one key digest.
#[derive(Clone)]
enum Entry {
    Valid {
        identity: Arc<Identity>,
        until: Instant,
    },
    Refused {
        code: String,
        until: Instant,
    },
}

pub(crate) struct Inner {
    config: VerifierConfig,
    http: reqwest::Client,
    stream_http: reqwest::Client,
    cache: RwLock<Cache>,
    /// Whether the stream of changes is caught up: only then are answers cached.
    synced: AtomicBool,
    /// Moves on at every forgetting: an answer asked for before it is not cached.
    epoch: AtomicU64,
    /// Calls made to `POST /v1/keys/verify`.
    asked: AtomicU64,
    /// The last event id seen, for `Last-Event-ID`.
    position: Mutex<Option<String>>,
    /// Keys changed lately, and until when their answers are not kept; `None` for all.
    settling: Mutex<Settling>,
}

/// The answers kept, by key digest, and which digests hold an answer about each key id (so
/// that an event about a key forgets its answers without a look at every entry).
#[derive(Default)]
struct Cache {
    entries: HashMap<[u8; 32], Entry>,
    by_key: HashMap<String, Vec<[u8; 32]>>,
    /// The size at which expired entries are next swept before one is added: twice what
    /// was left at the last sweep (so that sweeps cost a constant per entry added), and at
    /// most the cap.
    sweep_at: usize,
    /// When a sweep left the cache full: it is not swept again before a second has passed
    /// (a full cache of live answers would otherwise be swept for every answer offered).
    full_until: Option<Instant>,
}

impl Cache {
    fn insert(&mut self, digest: [u8; 32], entry: Entry) {
        self.insert_at(digest, entry, Instant::now());
    }

    fn insert_at(&mut self, digest: [u8; 32], entry: Entry, now: Instant) {
        if self.entries.len() >= self.sweep_at.max(SWEEP_AT)
            && self.full_until.is_none_or(|until| until <= now)
        {
            self.sweep(now);
            let left = self.entries.len();
            self.sweep_at = (left * 2).min(MAX_ENTRIES);
            self.full_until = (left >= MAX_ENTRIES).then(|| now + Duration::from_secs(1));
        }
        if self.entries.len() >= MAX_ENTRIES {
            return;
        }
        if let Entry::Valid { identity, .. } = &entry {
            let digests = self.by_key.entry(identity.key_id.clone()).or_default();
            if !digests.contains(&digest) {
                digests.push(digest);
            }
        }
        if let Some(Entry::Valid { identity, .. }) = self.entries.insert(digest, entry) {
            self.unindex(&identity.key_id, &digest);
        }
    }

    /// Drops the entries that expired by `now`.
    fn sweep(&mut self, now: Instant) {
        let Self {
            entries, by_key, ..
        } = self;
        entries.retain(|digest, entry| match entry {
            Entry::Valid { until, identity } => {
                let keep = *until > now;
                if !keep {
                    unindex(by_key, &identity.key_id, digest);
                }
                keep
            }
            Entry::Refused { until, .. } => *until > now,
        });
    }

    /// Forgets every valid answer about `key_id` (refusals are final and stay).
    fn forget(&mut self, key_id: &str) {
        for digest in self.by_key.remove(key_id).unwrap_or_default() {
            if matches!(self.entries.get(&digest), Some(Entry::Valid { identity, .. }) if identity.key_id == key_id)
            {
                self.entries.remove(&digest);
            }
        }
    }

    /// `digest` no longer holds an answer about `key_id`, if it still did (a refusal may have
    /// taken its place, for a key revoked meanwhile).
    fn unindex(&mut self, key_id: &str, digest: &[u8; 32]) {
        if !matches!(self.entries.get(digest), Some(Entry::Valid { identity, .. }) if identity.key_id == key_id)
        {
            unindex(&mut self.by_key, key_id, digest);
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.by_key.clear();
    }
}

fn unindex(by_key: &mut HashMap<String, Vec<[u8; 32]>>, key_id: &str, digest: &[u8; 32]) {
    if let Some(digests) = by_key.get_mut(key_id) {
        digests.retain(|kept| kept != digest);
        if digests.is_empty() {
            by_key.remove(key_id);
        }
    }
}

#[derive(Default)]
struct Settling {
    keys: HashMap<String, Instant>,
    /// The size at which settled keys are next swept.
    sweep_at: usize,
    everything_until: Option<Instant>,
}

/// Verifies keys through Keyward once and from memory after; cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

/// Keyward's answer to `POST /v1/keys/verify`.
#[derive(Deserialize)]
struct Verification {
    valid: bool,
    code: String,
    #[serde(default)]
    cacheable: bool,
    #[serde(default)]
    retry_after: Option<u64>,
    key_id: Option<String>,
    kind: Option<String>,
    organization_id: Option<String>,
    project_id: Option<String>,
    scopes: Option<Vec<String>>,
    expires_at: Option<String>,
    external_id: Option<String>,
    meta: Option<serde_json::Value>,
}

impl Verification {
    /// Who the key is, when it is valid.
    fn identity(&mut self) -> Option<Identity> {
        if !self.valid {
            return None;
        }
        Some(Identity {
            key_id: self.key_id.take()?,
            kind: self.kind.take()?,
            organization_id: self.organization_id.take()?,
            project_id: self.project_id.take(),
            scopes: self.scopes.take()?,
            expires_at: self.expires_at.take(),
            external_id: self.external_id.take(),
            meta: self.meta.take(),
        })
    }
}

impl Verifier {
    /// A verifier; call [`Verifier::follow`] (once) to start following changes, without which
    /// nothing is cached.
    pub fn new(config: VerifierConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .unwrap_or_default();
        let stream_http = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .build()
            .unwrap_or_default();
        Self {
            inner: Arc::new(Inner {
                config,
                http,
                stream_http,
                cache: RwLock::default(),
                synced: AtomicBool::new(false),
                epoch: AtomicU64::new(0),
                asked: AtomicU64::new(0),
                position: Mutex::new(None),
                settling: Mutex::default(),
            }),
        }
    }

    /// Follows Keyward's stream of changes until the runtime stops, reconnecting whenever it
    /// drops; answers are cached only while it is caught up.
    pub fn follow(&self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(stream::follow(self.inner.clone()))
    }

    /// Whether the stream of changes is caught up (and answers are cached).
    pub fn synced(&self) -> bool {
        self.inner.synced.load(Ordering::SeqCst)
    }

    /// How many times Keyward was asked to verify a key.
    pub fn keyward_calls(&self) -> u64 {
        self.inner.asked.load(Ordering::Relaxed)
    }

    /// How many keys the cache holds an answer for.
    pub fn cached(&self) -> usize {
        self.inner.read().entries.len()
    }

    /// Whether `key` may be used, and by whom. `client_ip` is the address it was presented
    /// from, for keys limited to networks.
    pub async fn verify(
        &self,
        key: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<Arc<Identity>, Refusal> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        if let Some(known) = self.cached_answer(&digest) {
            return known;
        }
        self.ask(key, digest, client_ip).await
    }

    /// What memory says of `key` without asking Keyward: `None` when it must be asked
    /// ([`Verifier::verify`] does both).
    pub fn verify_cached(&self, key: &str) -> Option<Result<Arc<Identity>, Refusal>> {
        self.cached_answer(&Sha256::digest(key.as_bytes()).into())
    }

    /// The cached answer for `digest`, if fresh.
    fn cached_answer(&self, digest: &[u8; 32]) -> Option<Result<Arc<Identity>, Refusal>> {
        let cache = self.inner.read();
        let now = Instant::now();
        match cache.entries.get(digest)? {
            Entry::Valid { identity, until } if *until > now => Some(Ok(identity.clone())),
            Entry::Refused { code, until } if *until > now => Some(Err(Refusal::Refused {
                code: code.clone(),
                retry_after: None,
            })),
            _ => None,
        }
    }

    async fn ask(
        &self,
        key: &str,
        digest: [u8; 32],
        client_ip: Option<IpAddr>,
    ) -> Result<Arc<Identity>, Refusal> {
        let inner = &self.inner;
        let epoch = inner.epoch.load(Ordering::SeqCst);
        let synced = inner.synced.load(Ordering::SeqCst);
        inner.asked.fetch_add(1, Ordering::Relaxed);
        let mut body = serde_json::json!({ "key": key });
        if let Some(ip) = client_ip {
            body["client_ip"] = ip.to_string().into();
        }
        let answer = inner
            .http
            .post(format!("{}/v1/keys/verify", inner.config.keyward_url))
            .bearer_auth(&inner.config.verify_key)
            .json(&body)
            .send()
            .await
            .map_err(|error| {
                tracing::warn!(%error, "Keyward could not be asked to verify a key");
                Refusal::Unavailable
            })?;
        if !answer.status().is_success() {
            tracing::warn!(status = %answer.status(), "Keyward refused to verify a key");
            return Err(Refusal::Unavailable);
        }
        let mut answer: Verification = answer.json().await.map_err(|error| {
            tracing::warn!(%error, "Keyward's answer could not be read");
            Refusal::Unavailable
        })?;
        let now = Instant::now();
        let (entry, result) = match answer.identity() {
            Some(identity) => {
                let identity = Arc::new(identity);
                let until = now + lifetime(&identity, inner.config.max_age);
                let entry = Entry::Valid {
                    identity: identity.clone(),
                    until,
                };
                (entry, Ok(identity))
            }
            None => {
                if !matches!(answer.code.as_str(), "REVOKED" | "EXPIRED") {
                    answer.cacheable = false;
                }
                let entry = Entry::Refused {
                    code: answer.code.clone(),
                    until: now + inner.config.negative_age,
                };
                let refusal = Refusal::Refused {
                    code: answer.code,
                    retry_after: answer.retry_after,
                };
                (entry, Err(refusal))
            }
        };
        // Only while caught up, only if nothing was forgotten while Keyward answered (a
        // revocation that overtook the answer must win), and not for a key changed lately
        // (the node that answered may not have heard yet).
        let settled = match &result {
            Ok(identity) => inner.settled(&identity.key_id),
            Err(_) => true,
        };
        if answer.cacheable && synced && settled {
            let mut cache = inner.write();
            if inner.synced.load(Ordering::SeqCst) && inner.epoch.load(Ordering::SeqCst) == epoch {
                cache.insert(digest, entry);
            }
        }
        result
    }

    /// Forgets a key's answers as an event about it does (benchmarks, tests).
    #[doc(hidden)]
    pub fn forget_key(&self, key_id: &str) {
        self.inner.forget(key_id);
    }

    /// Puts an answer in the cache as if Keyward had given it (benchmarks, tests).
    #[doc(hidden)]
    pub fn prime(&self, key: &str, identity: Identity) {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let until = Instant::now() + self.inner.config.max_age;
        self.inner.write().insert(
            digest,
            Entry::Valid {
                identity: Arc::new(identity),
                until,
            },
        );
    }
}

impl Inner {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        self.cache.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Cache> {
        self.cache.write().unwrap_or_else(|p| p.into_inner())
    }

    fn settling(&self) -> std::sync::MutexGuard<'_, Settling> {
        self.settling.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether answers about `key_id` may be kept: it has not changed lately.
    fn settled(&self, key_id: &str) -> bool {
        let settling = self.settling();
        let now = Instant::now();
        settling.everything_until.is_none_or(|until| until <= now)
            && settling.keys.get(key_id).is_none_or(|until| *until <= now)
    }

    /// Forgets every answer about the key `key_id`, and keeps none for a while.
    pub(crate) fn forget(&self, key_id: &str) {
        {
            let mut settling = self.settling();
            let now = Instant::now();
            // As the cache's sweeps: at twice what the last one left.
            if settling.keys.len() >= settling.sweep_at.max(SWEEP_AT) {
                settling.keys.retain(|_, until| *until > now);
                settling.sweep_at = settling.keys.len() * 2;
            }
            settling.keys.insert(key_id.to_owned(), now + SETTLING);
        }
        let mut cache = self.write();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        cache.forget(key_id);
    }

    /// Forgets everything and caches nothing until `synced` is set again.
    pub(crate) fn unsync(&self) {
        let mut cache = self.write();
        self.synced.store(false, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        cache.clear();
    }

    /// Forgets everything (a `reset`: changes were missed), and keeps nothing for a while.
    pub(crate) fn clear(&self) {
        self.settling().everything_until = Some(Instant::now() + SETTLING);
        let mut cache = self.write();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        cache.clear();
    }
}

/// How long an answer about `identity` may be kept: `max_age`, or less if it expires sooner.
fn lifetime(identity: &Identity, max_age: Duration) -> Duration {
    let Some(expires_at) = identity.expires_at.as_deref() else {
        return max_age;
    };
    let format = time::format_description::well_known::Rfc3339;
    match time::OffsetDateTime::parse(expires_at, &format) {
        Ok(at) => {
            let left = at - time::OffsetDateTime::now_utc();
            max_age.min(Duration::try_from(left).unwrap_or(Duration::ZERO))
        }
        // Unreadable: not cached.
        Err(_) => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(expires_at: Option<&str>, project: Option<&str>) -> Identity {
        Identity {
            key_id: "key_1".into(),
            kind: "api_key".into(),
            organization_id: "org_1".into(),
            project_id: project.map(str::to_owned),
            scopes: vec!["things:read".into()],
            expires_at: expires_at.map(str::to_owned),
            external_id: None,
            meta: None,
        }
    }

    fn valid(key_id: &str, until: Instant) -> Entry {
        Entry::Valid {
            identity: Arc::new(Identity {
                key_id: key_id.into(),
                ..identity(None, None)
            }),
            until,
        }
    }

    /// Every valid entry is indexed under its key id, and the index holds nothing else.
    fn assert_indexed(cache: &Cache) {
        let mut indexed = 0;
        for (key_id, digests) in &cache.by_key {
            assert!(!digests.is_empty(), "{key_id}");
            for digest in digests {
                let held = cache.entries.get(digest);
                assert!(
                    matches!(held, Some(Entry::Valid { identity, .. }) if identity.key_id == *key_id),
                    "{key_id}"
                );
                indexed += 1;
            }
        }
        let valid = cache
            .entries
            .values()
            .filter(|entry| matches!(entry, Entry::Valid { .. }))
            .count();
        assert_eq!(indexed, valid);
    }

    #[test]
    fn an_event_forgets_a_keys_answers_through_the_index() {
        let later = Instant::now() + Duration::from_secs(60);
        let mut cache = Cache::default();
        cache.insert([1; 32], valid("key_a", later));
        cache.insert([2; 32], valid("key_a", later));
        cache.insert([3; 32], valid("key_b", later));
        cache.insert(
            [4; 32],
            Entry::Refused {
                code: "REVOKED".into(),
                until: later,
            },
        );
        assert_indexed(&cache);
        cache.forget("key_a");
        assert_eq!(cache.entries.len(), 2);
        assert!(cache.entries.contains_key(&[3; 32]));
        assert!(cache.entries.contains_key(&[4; 32]), "refusals are final");
        assert_indexed(&cache);
        // A digest whose answer changed is indexed under its new key only.
        cache.insert([3; 32], valid("key_c", later));
        assert_indexed(&cache);
        cache.forget("key_b");
        assert!(cache.entries.contains_key(&[3; 32]));
        cache.insert(
            [3; 32],
            Entry::Refused {
                code: "REVOKED".into(),
                until: later,
            },
        );
        assert_indexed(&cache);
        assert!(cache.by_key.is_empty());
    }

    #[test]
    fn expired_answers_are_swept_at_twice_what_the_last_sweep_left() {
        let now = Instant::now();
        let mut cache = Cache::default();
        // Half expired, half not.
        for index in 0..SWEEP_AT {
            let until = if index % 2 == 0 {
                now
            } else {
                now + Duration::from_secs(60)
            };
            let digest: [u8; 32] = Sha256::digest(index.to_ne_bytes()).into();
            cache.insert(digest, valid(&format!("key_{index}"), until));
        }
        assert_eq!(cache.entries.len(), SWEEP_AT, "no sweep yet");
        cache.insert([0; 32], valid("key_new", now + Duration::from_secs(60)));
        assert_eq!(cache.entries.len(), SWEEP_AT / 2 + 1, "swept, then added");
        // Twice what the sweep left.
        assert_eq!(cache.sweep_at, SWEEP_AT);
        assert_indexed(&cache);
        // Live entries: the next sweep waits until the cache has doubled.
        for index in 0..SWEEP_AT {
            let digest: [u8; 32] = Sha256::digest((index + SWEEP_AT).to_ne_bytes()).into();
            let key_id = format!("key_live_{index}");
            cache.insert(digest, valid(&key_id, now + Duration::from_secs(60)));
        }
        // One sweep on the way, at SWEEP_AT entries, which found nothing to drop.
        assert_eq!(cache.entries.len(), SWEEP_AT / 2 + 1 + SWEEP_AT);
        assert_eq!(cache.sweep_at, 2 * SWEEP_AT);
        assert_indexed(&cache);
    }

    #[test]
    fn a_full_cache_of_expired_answers_is_swept_for_the_next_one() {
        let start = Instant::now();
        let mut cache = Cache::default();
        // Live as they come in: the sweeps on the way (10k, 20k, 40k, 80k) drop nothing.
        for index in 0..MAX_ENTRIES {
            let digest: [u8; 32] = Sha256::digest(index.to_ne_bytes()).into();
            let key_id = format!("key_{index}");
            cache.insert_at(
                digest,
                valid(&key_id, start + Duration::from_secs(60)),
                start,
            );
        }
        assert_eq!(cache.entries.len(), MAX_ENTRIES);
        assert_eq!(cache.sweep_at, MAX_ENTRIES);
        // Full, of live answers: a new one is not kept, and the next sweep waits a second.
        cache.insert_at(
            [0; 32],
            valid("key_late", start + Duration::from_secs(60)),
            start,
        );
        assert!(!cache.entries.contains_key(&[0; 32]));
        // Two minutes on, all have expired: the next answer sweeps them and is kept.
        let later = start + Duration::from_secs(120);
        cache.insert_at(
            [0; 32],
            valid("key_new", later + Duration::from_secs(60)),
            later,
        );
        assert_eq!(cache.entries.len(), 1);
        assert_indexed(&cache);
    }

    #[test]
    fn scopes_and_projects_are_checked_locally() {
        let key = identity(None, None);
        assert_eq!(key.require("things:read"), Ok(()));
        assert_eq!(
            key.require("things:write"),
            Err(Refusal::InsufficientScope("things:write".into()))
        );
        assert!(key.reaches("prj_a"));
        let token = identity(None, Some("prj_a"));
        assert!(token.reaches("prj_a"));
        assert!(!token.reaches("prj_b"));
    }

    #[test]
    fn an_answer_is_never_kept_past_its_keys_expiry() {
        let max = Duration::from_secs(60);
        assert_eq!(lifetime(&identity(None, None), max), max);
        assert_eq!(
            lifetime(&identity(Some("2000-01-01T00:00:00Z"), None), max),
            Duration::ZERO
        );
        assert_eq!(
            lifetime(&identity(Some("3000-01-01T00:00:00Z"), None), max),
            max
        );
        let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(10);
        let soon = soon
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let left = lifetime(&identity(Some(&soon), None), max);
        assert!(
            left <= Duration::from_secs(10) && left > Duration::from_secs(8),
            "{left:?}"
        );
        assert_eq!(
            lifetime(&identity(Some("not a time"), None), max),
            Duration::ZERO
        );
    }

    #[test]
    fn forgetting_a_key_leaves_the_others() {
        let verifier = Verifier::new(VerifierConfig::new("http://127.0.0.1:1", "kwk_x"));
        verifier.prime("kwk_a", identity(None, None));
        let mut other = identity(None, None);
        other.key_id = "key_2".into();
        verifier.prime("kwk_b", other);
        assert_eq!(verifier.cached(), 2);
        verifier.inner.forget("key_1");
        assert_eq!(verifier.cached(), 1);
        assert!(
            verifier
                .cached_answer(&Sha256::digest(b"kwk_b").into())
                .is_some()
        );
        assert!(
            verifier
                .cached_answer(&Sha256::digest(b"kwk_a").into())
                .is_none()
        );
        verifier.inner.unsync();
        assert_eq!(verifier.cached(), 0);
    }
}
