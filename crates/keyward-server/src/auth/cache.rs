//! The verification cache: what the database says about a key digest, kept in memory.
//!
//! A concurrent map sharded 64 ways, keyed by the first 16 bytes of the SHA-256 digest (a
//! random value, so it is its own hash; the entry keeps the whole digest and is checked
//! against it). It holds found credentials (revoked ones too, so floods of revoked keys stay
//! off the database) and, for a short while, digests that matched nothing.
//!
//! Guarantees:
//! - Concurrent misses for one digest make one database read (single flight).
//! - [`VerificationCache::invalidate`] returns only when the digest can no longer be served
//!   from memory: it bumps an epoch, removes the entry and any read in flight; a read that
//!   started before the bump finishes but is not stored.
//! - Entries older than the maximum age are reloaded; negatives live a few seconds.
//! - An entry read in an earlier generation of the store (before the node lost its database
//!   and found it again, perhaps missing changes) is never served: it is read again.
//! - While the database is known to be away, entries are served whatever their age until
//!   the outage grace has passed since it went away; then not at all.
//! - A rate-limited credential's account (its lease of the shared limit, and the state it
//!   falls back on while the database is away) lives apart from its entry and is shared by
//!   every entry loaded for the credential, for as long as it holds anything: ageing out, a
//!   reload, an invalidation (rename, limit change) or clearing the cache gives no quota back.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::http::HeaderValue;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyward_core::{
    CredentialId, ExternalId, KeyDigest, Lifetime, Meta, Metadata, Networks, OrganizationId,
    ProjectId, RateLimit, ScopeCatalog, ScopeSet, Timestamp,
};
use keyward_store::{CredentialRecord, CreditOwner, DatabaseState, RateBucket, Store, StoreError};
use tokio::sync::OnceCell;

use super::counts::{UsageCell, UsageCounts};
use super::credits::{CreditAccount, CreditAccounts};
use super::rates::{RateAccount, RateAccounts};

/// Where the cache reads what it does not know: the store (or, in tests, a fake).
pub trait Source: Send + Sync {
    /// See [`Store::state`].
    fn state(&self) -> DatabaseState;

    /// See [`Store::find_credential_by_digest`].
    fn find(
        &self,
        digest: &KeyDigest,
    ) -> impl Future<Output = Result<Option<CredentialRecord>, StoreError>> + Send;
}

impl Source for dyn Store + '_ {
    fn state(&self) -> DatabaseState {
        Store::state(self)
    }

    async fn find(&self, digest: &KeyDigest) -> Result<Option<CredentialRecord>, StoreError> {
        self.find_credential_by_digest(digest).await
    }
}

const SHARDS: usize = 64;
/// How long a digest that matched nothing is remembered.
pub const NEGATIVE_SECONDS: i64 = 10;
/// At most this many negatives are kept, so a flood of made-up keys cannot fill memory.
pub const MAX_NEGATIVES: usize = 100_000;

/// A credential as verification needs it.
pub struct CachedCredential {
    pub digest: KeyDigest,
    pub id: CredentialId,
    pub organization_id: OrganizationId,
    pub project_id: Option<ProjectId>,
    pub name: Box<str>,
    /// What the stored scope names grant under the catalog in force: names it does not define
    /// grant nothing, and a project token only project-level scopes.
    pub scopes: ScopeSet,
    pub created_at: Timestamp,
    /// Until when it works: refused as revoked at once when revoked, at the end of the overlap
    /// when rotated (on every node, with no message needed).
    pub lifetime: Lifetime,
    /// Its organization is suspended (read with it; every node forgets the organization's
    /// credentials when this changes).
    pub suspended: bool,
    /// Its rate limit, networks, external id and meta, if it has any: one pointer (8 bytes)
    /// for the many credentials that have none, which cost no allocation.
    extras: Option<Box<Extras>>,
    loaded_at: i64,
    /// The store's generation when the read that made this entry began.
    generation: u64,
    /// Last use this node has seen, in Unix seconds.
    pub(super) last_used: AtomicI64,
    /// Its allowed verifications this hour, not yet taken by the usage counts (which absorb
    /// them when the entry leaves the cache, and at each flush).
    pub(super) usage: UsageCell,
}

/// What only some credentials have.
struct Extras {
    rate_limit: Option<RateLimit>,
    /// This node's account of its rate limit, shared by every entry of it; with a limit.
    rate: Option<Arc<RateAccount>>,
    /// The ranges it may be used from; `None` for any address.
    networks: Option<Networks>,
    metadata: Metadata,
    /// `Keyward-External-Id` and `Keyward-Meta` (unpadded base64url of the JSON) for forward
    /// authentication, made once when loaded.
    external_id_header: Option<HeaderValue>,
    meta_header: Option<HeaderValue>,
    /// This node's account of its credits, shared by every entry of it; with credits.
    credits: Option<Arc<CreditAccount>>,
    /// This node's accounts of its identity's limits, shared by every credential that
    /// carries its external id; when that identity has limits.
    identity: Option<IdentityAccounts>,
}

/// This node's accounts of the limits an identity's credentials share.
struct IdentityAccounts {
    rate: Option<(RateLimit, Arc<RateAccount>)>,
    credits: Option<Arc<CreditAccount>>,
}

impl CachedCredential {
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.extras.as_ref().and_then(|extras| extras.rate_limit)
    }

    /// The ranges it may be used from; `None` for any address.
    pub fn networks(&self) -> Option<&Networks> {
        self.extras
            .as_ref()
            .and_then(|extras| extras.networks.as_ref())
    }

    /// This node's account of its credits, if it has credits.
    pub fn credits(&self) -> Option<&Arc<CreditAccount>> {
        self.extras
            .as_ref()
            .and_then(|extras| extras.credits.as_ref())
    }

    /// This node's account of its rate limit, with a limit.
    pub fn rate_account(&self) -> Option<&Arc<RateAccount>> {
        self.extras.as_ref().and_then(|extras| extras.rate.as_ref())
    }

    fn identity(&self) -> Option<&IdentityAccounts> {
        self.extras
            .as_ref()
            .and_then(|extras| extras.identity.as_ref())
    }

    /// Whether a request with it has any rate limit to pass (one pointer test for most keys).
    pub fn rate_limited(&self) -> bool {
        self.extras.as_ref().is_some_and(|extras| {
            extras.rate.is_some()
                || extras
                    .identity
                    .as_ref()
                    .is_some_and(|identity| identity.rate.is_some())
        })
    }

    /// Every rate limit a request with it must pass, each with this node's account: its own,
    /// then its identity's.
    pub fn rate_limits(&self) -> [Option<(RateLimit, &Arc<RateAccount>)>; 2] {
        let own = self.rate_limit().zip(self.rate_account());
        let identity = self
            .identity()
            .and_then(|identity| identity.rate.as_ref())
            .map(|(limit, account)| (*limit, account));
        [own, identity]
    }

    /// This node's account of its identity's credits, when the identity has credits.
    pub fn identity_credits(&self) -> Option<&Arc<CreditAccount>> {
        self.identity()
            .and_then(|identity| identity.credits.as_ref())
    }

    /// What is left of its credits and its identity's, the least, as this node knows it;
    /// `None` when neither has credits.
    pub fn credits_left(&self) -> Option<i64> {
        [self.credits(), self.identity_credits()]
            .into_iter()
            .flatten()
            .map(|account| account.peek())
            .min()
    }

    /// Whether its identity has limits: then, as with credits of its own, it cannot hand on
    /// what it has (create keys, add members, open portal sessions).
    pub fn identity_limited(&self) -> bool {
        self.identity().is_some()
    }

    pub fn external_id(&self) -> Option<&ExternalId> {
        self.extras
            .as_ref()
            .and_then(|extras| extras.metadata.external_id.as_ref())
    }

    pub fn meta(&self) -> Option<&Meta> {
        self.extras
            .as_ref()
            .and_then(|extras| extras.metadata.meta.as_ref())
    }

    /// Its external id and meta as the headers forward authentication gives the upstream:
    /// `Keyward-External-Id`, and `Keyward-Meta` as unpadded base64url of the JSON.
    pub fn metadata_headers(&self) -> (Option<&HeaderValue>, Option<&HeaderValue>) {
        match &self.extras {
            Some(extras) => (
                extras.external_id_header.as_ref(),
                extras.meta_header.as_ref(),
            ),
            None => (None, None),
        }
    }

    /// When it expires, if it does.
    pub fn expires_at(&self) -> Option<Timestamp> {
        self.lifetime.expires_at()
    }

    /// When it stops working at the latest (see [`Lifetime::usable_until`]).
    pub fn usable_until(&self) -> Option<Timestamp> {
        self.lifetime.usable_until()
    }

    /// An entry with accounts of its own (for tests and benchmarks).
    pub fn from_record(record: CredentialRecord, now: Timestamp, catalog: &ScopeCatalog) -> Self {
        // Registries of its own: the accounts outlive them, held by the entry alone.
        let shared = Shared::of(
            &record,
            now,
            &RateAccounts::default(),
            &CreditAccounts::default(),
        );
        Self::with_limiter(record, now, 0, shared, catalog)
    }

    fn with_limiter(
        record: CredentialRecord,
        now: Timestamp,
        generation: u64,
        shared: Shared,
        catalog: &ScopeCatalog,
    ) -> Self {
        let Shared {
            rate,
            credits,
            identity,
        } = shared;
        Self {
            scopes: catalog.granted(&record.scopes, record.id.kind()),
            digest: record.digest,
            id: record.id,
            organization_id: record.organization_id,
            project_id: record.project_id,
            name: record.name.as_str().into(),
            created_at: record.created_at,
            lifetime: record.lifetime(),
            suspended: record.organization_suspended,
            extras: (record.rate_limit.is_some()
                || record.allowed_cidrs.is_some()
                || !record.metadata.is_empty()
                || credits.is_some()
                || identity.is_some())
            .then(|| {
                let external_id_header = record
                    .metadata
                    .external_id
                    .as_ref()
                    .and_then(|id| HeaderValue::from_str(id.as_str()).ok());
                let meta_header = record.metadata.meta.as_ref().and_then(|meta| {
                    HeaderValue::try_from(URL_SAFE_NO_PAD.encode(meta.as_str())).ok()
                });
                Box::new(Extras {
                    rate_limit: record.rate_limit,
                    rate,
                    networks: record.allowed_cidrs,
                    metadata: record.metadata,
                    external_id_header,
                    meta_header,
                    credits,
                    identity,
                })
            }),
            loaded_at: now.unix_seconds(),
            generation,
            last_used: AtomicI64::new(record.last_used_at.map_or(0, Timestamp::unix_seconds)),
            usage: UsageCell::default(),
        }
    }
}

/// What an entry shares with the other entries of its credential on this node.
struct Shared {
    rate: Option<Arc<RateAccount>>,
    credits: Option<Arc<CreditAccount>>,
    identity: Option<IdentityAccounts>,
}

impl Shared {
    /// The accounts `record` needs, from the registries of this node.
    fn of(
        record: &CredentialRecord,
        now: Timestamp,
        rates: &RateAccounts,
        credits: &CreditAccounts,
    ) -> Self {
        let credit_account = |owner: CreditOwner, stored: &keyward_store::StoredCredits| {
            credits.account(owner, stored.generation, stored.remaining(now))
        };
        Self {
            rate: record
                .rate_limit
                .map(|_| rates.account(RateBucket::credential(record.id))),
            credits: record
                .credits
                .as_ref()
                .map(|stored| credit_account(record.id.into(), stored)),
            identity: record
                .identity_limits
                .as_ref()
                .map(|limits| IdentityAccounts {
                    rate: limits
                        .rate_limit
                        .map(|limit| (limit, rates.account(RateBucket::identity(limits.id)))),
                    credits: limits
                        .credits
                        .as_ref()
                        .map(|stored| credit_account(CreditOwner::Identity(limits.id), stored)),
                }),
        }
    }
}

enum Slot {
    Found(Arc<CachedCredential>),
    Missing { until: i64 },
}

/// What memory knows about a digest.
pub enum Lookup {
    Found(Arc<CachedCredential>),
    /// Known to match no credential.
    Missing,
    /// Not known (or too old): ask the database.
    Absent,
}

/// The result of a database read, shared by every request waiting on it.
#[derive(Clone)]
pub enum Loaded {
    Found(Arc<CachedCredential>),
    Missing,
    Unavailable,
    Failed,
}

/// The digest's first 16 bytes as the map key: uniformly random already.
fn key_of(digest: &KeyDigest) -> u128 {
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest.as_bytes()[..16]);
    u128::from_le_bytes(first)
}

/// Hashes a `u128` key by taking its low 64 bits, which are random.
#[derive(Clone, Copy, Default)]
pub struct PrefixHash(u64);

impl Hasher for PrefixHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u128 keys are hashed here; fold anything else in, to stay correct.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u128(&mut self, value: u128) {
        self.0 = value as u64;
    }
}

impl BuildHasher for PrefixHash {
    type Hasher = PrefixHash;
    fn build_hasher(&self) -> PrefixHash {
        PrefixHash(0)
    }
}

type Shard = RwLock<HashMap<u128, Slot, PrefixHash>>;
/// A read in flight: its result, and the epoch it began in.
type InflightRead = OnceCell<(Loaded, u64)>;

pub struct VerificationCache {
    shards: Box<[Shard]>,
    epoch: AtomicU64,
    inflight: Mutex<HashMap<u128, Arc<InflightRead>>>,
    max_age_seconds: i64,
    outage_grace: Duration,
    negatives: AtomicUsize,
    /// The rate accounts of rate-limited credentials; see [`Self::sweep`].
    rates: RateAccounts,
    /// What stored scope names mean.
    catalog: Arc<ScopeCatalog>,
    /// Usage counts, with the cells entries count their allowed verifications in.
    counts: UsageCounts,
    /// The credit accounts of credentials with credits.
    credits: CreditAccounts,
}

impl VerificationCache {
    pub fn new(max_age_seconds: i64, outage_grace: Duration, catalog: Arc<ScopeCatalog>) -> Self {
        Self {
            catalog,
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            epoch: AtomicU64::new(0),
            inflight: Mutex::default(),
            max_age_seconds,
            outage_grace,
            negatives: AtomicUsize::new(0),
            rates: RateAccounts::default(),
            counts: UsageCounts::default(),
            credits: CreditAccounts::default(),
        }
    }

    /// The rate accounts of the credentials this cache serves.
    pub fn rate_accounts(&self) -> &RateAccounts {
        &self.rates
    }

    /// The credit accounts of the credentials this cache serves.
    pub fn credit_accounts(&self) -> &CreditAccounts {
        &self.credits
    }

    /// The usage counts of the credentials this cache serves.
    pub fn usage_counts(&self) -> &UsageCounts {
        &self.counts
    }

    fn shard(&self, key: u128) -> &Shard {
        &self.shards[(key >> 122) as usize % SHARDS]
    }

    /// Whether `entry` may be served at `now`, the store being in `state`.
    fn servable(&self, entry: &CachedCredential, now: i64, state: DatabaseState) -> bool {
        if entry.generation != state.generation {
            return false;
        }
        match state.down_for {
            None => now - entry.loaded_at < self.max_age_seconds,
            Some(down_for) => down_for < self.outage_grace,
        }
    }

    /// What memory knows about `digest` at `now`, the store being in `state`.
    pub fn get(&self, digest: &KeyDigest, now: Timestamp, state: DatabaseState) -> Lookup {
        let key = key_of(digest);
        let shard = self.shard(key).read().unwrap_or_else(|p| p.into_inner());
        match shard.get(&key) {
            Some(Slot::Found(entry))
                if entry.digest == *digest && self.servable(entry, now.unix_seconds(), state) =>
            {
                Lookup::Found(entry.clone())
            }
            Some(Slot::Missing { until }) if *until > now.unix_seconds() => Lookup::Missing,
            _ => Lookup::Absent,
        }
    }

    /// Reads `digest` from the store, once for all concurrent callers, and remembers it.
    ///
    /// A read that an invalidation overtook (anywhere in the cache: the epoch is shared) is
    /// not trusted by the requests that waited for it either: they read again, a few times at
    /// most, so that a key revoked while its read was in flight is not served by it.
    pub async fn load<S: Source + ?Sized>(
        &self,
        digest: &KeyDigest,
        now: Timestamp,
        store: &S,
    ) -> Loaded {
        const ATTEMPTS: usize = 3;
        let mut attempt = 1;
        loop {
            let (loaded, read_epoch) = self.load_once(digest, now, store).await;
            let overtaken = self.epoch.load(Ordering::SeqCst) != read_epoch;
            if !overtaken || attempt == ATTEMPTS || !matches!(loaded, Loaded::Found(_)) {
                return loaded;
            }
            attempt += 1;
        }
    }

    /// One single-flight read, with the epoch it began in.
    async fn load_once<S: Source + ?Sized>(
        &self,
        digest: &KeyDigest,
        now: Timestamp,
        store: &S,
    ) -> (Loaded, u64) {
        let key = key_of(digest);
        let cell = self
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default()
            .clone();
        let loaded = cell
            .get_or_init(|| async {
                let epoch = self.epoch.load(Ordering::SeqCst);
                let generation = store.state().generation;
                let loaded = match store.find(digest).await {
                    Ok(Some(record)) => {
                        let entry = self.entry_for(record, now, generation);
                        self.store_if_current(key, Slot::Found(entry.clone()), epoch);
                        Loaded::Found(entry)
                    }
                    Ok(None) => {
                        let until = now.unix_seconds() + NEGATIVE_SECONDS;
                        self.store_if_current(key, Slot::Missing { until }, epoch);
                        Loaded::Missing
                    }
                    Err(StoreError::Unavailable(_)) => Loaded::Unavailable,
                    Err(error) => {
                        tracing::error!(%error, "credential look-up failed");
                        Loaded::Failed
                    }
                };
                (loaded, epoch)
            })
            .await
            .clone();
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if inflight.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            inflight.remove(&key);
        }
        loaded
    }

    /// Stores a read, unless an invalidation happened since it began.
    fn store_if_current(&self, key: u128, slot: Slot, epoch: u64) {
        let mut shard = self.shard(key).write().unwrap_or_else(|p| p.into_inner());
        if self.epoch.load(Ordering::SeqCst) != epoch {
            return;
        }
        if let Slot::Missing { .. } = slot {
            if self.negatives.load(Ordering::Relaxed) >= MAX_NEGATIVES {
                return;
            }
            self.negatives.fetch_add(1, Ordering::Relaxed);
        }
        let previous = shard.insert(key, slot);
        if let Some(previous) = &previous {
            self.absorb(previous);
        }
        match (previous, shard.get(&key)) {
            (Some(Slot::Missing { .. }), _) => {
                self.forget_negative();
            }
            // A reload keeps the last use this node saw (the limiter state is shared).
            (Some(Slot::Found(old)), Some(Slot::Found(new))) if old.digest == new.digest => {
                new.last_used
                    .fetch_max(old.last_used.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// Takes what `slot`'s entry counted into the usage counts, as it leaves the cache.
    fn absorb(&self, slot: &Slot) {
        if let Slot::Found(entry) = slot {
            self.counts.absorb(entry.id, &entry.usage);
        }
    }

    /// Takes what every entry counted into the usage counts, for a flush.
    pub fn absorb_usage(&self) {
        for shard in self.shards.iter() {
            let shard = shard.read().unwrap_or_else(|p| p.into_inner());
            for slot in shard.values() {
                self.absorb(slot);
            }
        }
    }

    /// Counts one negative entry less. Saturating: `clear` resets the count while reads that
    /// began after it may still store negatives, so the count can run below the truth, and
    /// must never wrap.
    fn forget_negative(&self) {
        let _ = self
            .negatives
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
    }

    /// Forgets `digest`: the next verification reads the database.
    pub fn invalidate(&self, digest: &KeyDigest) {
        let key = key_of(digest);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let removed = self
            .shard(key)
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        match &removed {
            Some(Slot::Missing { .. }) => self.forget_negative(),
            Some(found) => self.absorb(found),
            None => {}
        }
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
    }

    /// Forgets everything (when notifications from other nodes may have been missed).
    pub fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        for shard in self.shards.iter() {
            let mut shard = shard.write().unwrap_or_else(|p| p.into_inner());
            for (_, slot) in shard.drain() {
                self.absorb(&slot);
            }
        }
        self.negatives.store(0, Ordering::Relaxed);
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn entry_for(
        &self,
        record: CredentialRecord,
        now: Timestamp,
        generation: u64,
    ) -> Arc<CachedCredential> {
        let shared = Shared::of(&record, now, &self.rates, &self.credits);
        Arc::new(CachedCredential::with_limiter(
            record,
            now,
            generation,
            shared,
            &self.catalog,
        ))
    }

    /// Drops entries that can no longer be served, so memory follows the keys in use, and
    /// rate accounts that no entry holds and that hold nothing.
    /// `monotonic` is the clock's monotonic time, which rate accounts are kept in.
    pub fn sweep(&self, now: Timestamp, monotonic: u64, state: DatabaseState) {
        let now = now.unix_seconds();
        for shard in self.shards.iter() {
            let mut shard = shard.write().unwrap_or_else(|p| p.into_inner());
            shard.retain(|_, slot| match slot {
                Slot::Found(entry) => {
                    let keep = self.servable(entry, now, state);
                    if !keep {
                        self.counts.absorb(entry.id, &entry.usage);
                    }
                    keep
                }
                Slot::Missing { until } => {
                    let keep = *until > now;
                    if !keep {
                        self.forget_negative();
                    }
                    keep
                }
            });
        }
        // After the entries, so that an account whose entry just went can go too.
        self.rates.sweep(monotonic);
    }

    /// Entries held, found and negative.
    pub fn entries(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.read().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    /// Stores a credential read elsewhere, in the store's first generation (benchmarks fill
    /// the cache this way).
    pub fn insert(&self, record: CredentialRecord, now: Timestamp) {
        let key = key_of(&record.digest);
        let epoch = self.epoch.load(Ordering::SeqCst);
        let entry = self.entry_for(record, now, 0);
        self.store_if_current(key, Slot::Found(entry), epoch);
    }
}

#[cfg(test)]
mod tests {
    use keyward_core::{CredentialKind, Name, ScopeNames};

    use super::*;

    fn record(rate_limit: Option<RateLimit>) -> CredentialRecord {
        CredentialRecord {
            id: CredentialId::generate(CredentialKind::ApiKey),
            digest: KeyDigest::of(&format!(
                "key {:?}",
                CredentialId::generate(CredentialKind::ApiKey)
            )),
            organization_id: OrganizationId::generate(),
            project_id: None,
            name: Name::parse("limited").unwrap(),
            hint: String::new(),
            scopes: ScopeNames::from_storage("instances:read").unwrap(),
            created_at: Timestamp::now(),
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
            rate_limit,
            allowed_cidrs: None,
            created_by_user: None,
            rotated_from: None,
            rotation: None,
            exposure: None,
            metadata: keyward_core::Metadata::default(),
            organization_suspended: false,
            credits: None,
            identity_limits: None,
        }
    }

    fn cached(
        cache: &VerificationCache,
        digest: &KeyDigest,
        now: Timestamp,
    ) -> Arc<CachedCredential> {
        match cache.get(digest, now, DatabaseState::default()) {
            Lookup::Found(entry) => entry,
            _ => panic!("not cached"),
        }
    }

    #[test]
    fn a_rate_account_outlives_the_entry_while_it_holds_anything() {
        let cache = VerificationCache::new(60, Duration::from_secs(60), Arc::default());
        let limit = RateLimit::new(2, 86_400).unwrap();
        let limited = record(Some(limit));
        let digest = limited.digest;
        let now = Timestamp::now();
        let monotonic = 1_000_000_000;

        cache.insert(limited.clone(), now);
        let account = |at| cached(&cache, &digest, at).rate_account().cloned().unwrap();
        let first = account(now);
        // This node's own state (while the database is away) is spent.
        assert!(first.decide_locally(limit, monotonic).0);
        assert!(first.decide_locally(limit, monotonic).0);
        assert!(!first.decide_locally(limit, monotonic).0);

        // Invalidated, cleared, aged out and swept: every new entry has the same account.
        cache.invalidate(&digest);
        cache.insert(limited.clone(), now);
        assert!(Arc::ptr_eq(&account(now), &first));
        drop(first);
        cache.clear();
        let later = now.plus_seconds(120);
        cache.sweep(later, monotonic, DatabaseState::default());
        assert_eq!(cache.entries(), 0);
        assert_eq!(
            cache.rate_accounts().len(),
            1,
            "its window is still running"
        );
        cache.insert(limited.clone(), later);
        assert!(!account(later).decide_locally(limit, monotonic).0);

        // Once the window has run out, no entry holds it and it holds nothing, it goes: a
        // missing account is a whole quota, which is what it would be anyway.
        cache.clear();
        let day_later = monotonic + 86_400 * 1_000_000_000;
        cache.sweep(later.plus_seconds(120), day_later, DatabaseState::default());
        assert_eq!(cache.entries(), 0);
        assert!(cache.rate_accounts().is_empty());

        // Credentials without a limit keep no account.
        cache.insert(record(None), now);
        assert!(cache.rate_accounts().is_empty());
    }

    #[test]
    fn entries_of_an_earlier_generation_are_never_served_and_outages_have_a_grace() {
        let cache = VerificationCache::new(60, Duration::from_secs(30), Arc::default());
        let record = record(None);
        let digest = record.digest;
        let loaded = Timestamp::now();
        cache.insert(record, loaded);
        let up = DatabaseState::default();
        assert!(matches!(cache.get(&digest, loaded, up), Lookup::Found(_)));
        let reconnected = DatabaseState {
            generation: 1,
            down_for: None,
        };
        assert!(
            matches!(cache.get(&digest, loaded, reconnected), Lookup::Absent),
            "read before the node lost its database: may have missed a change"
        );

        // Down for a while: served past its maximum age, until the grace ends, to the
        // microsecond (the grace is measured on a monotonic clock, not in whole seconds).
        let down_for = |down_for: Duration| DatabaseState {
            generation: 0,
            down_for: Some(down_for),
        };
        let during = loaded.plus_seconds(90);
        let within = down_for(Duration::from_secs(30) - Duration::from_micros(1));
        assert!(matches!(
            cache.get(&digest, during, within),
            Lookup::Found(_)
        ));
        cache.sweep(during, 0, within);
        assert_eq!(cache.entries(), 1, "kept for the grace");
        let ended = down_for(Duration::from_secs(30));
        assert!(matches!(cache.get(&digest, during, ended), Lookup::Absent));
        cache.sweep(during, 0, ended);
        assert_eq!(cache.entries(), 0);
    }

    /// A store stand-in: answers with `record` (or nothing), counts reads, and holds each
    /// read until `release` gives it a permit.
    struct FakeSource {
        record: Mutex<Option<CredentialRecord>>,
        reads: AtomicUsize,
        release: tokio::sync::Semaphore,
        started: tokio::sync::Notify,
    }

    impl FakeSource {
        fn new(record: Option<CredentialRecord>, permits: usize) -> Arc<Self> {
            Arc::new(Self {
                record: Mutex::new(record),
                reads: AtomicUsize::new(0),
                release: tokio::sync::Semaphore::new(permits),
                started: tokio::sync::Notify::new(),
            })
        }

        fn reads(&self) -> usize {
            self.reads.load(Ordering::SeqCst)
        }
    }

    impl Source for FakeSource {
        fn state(&self) -> DatabaseState {
            DatabaseState::default()
        }

        async fn find(&self, _: &KeyDigest) -> Result<Option<CredentialRecord>, StoreError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.started.notify_one();
            self.release.acquire().await.unwrap().forget();
            Ok(self.record.lock().unwrap().clone())
        }
    }

    #[tokio::test]
    async fn concurrent_misses_for_one_digest_make_one_read() {
        let cache = Arc::new(VerificationCache::new(
            60,
            Duration::from_secs(60),
            Arc::default(),
        ));
        let stored = record(None);
        let digest = stored.digest;
        let source = FakeSource::new(Some(stored), 0);
        let now = Timestamp::now();
        let waiting: Vec<_> = (0..20)
            .map(|_| {
                let (cache, source) = (cache.clone(), source.clone());
                tokio::spawn(async move { cache.load(&digest, now, source.as_ref()).await })
            })
            .collect();
        source.started.notified().await;
        // On this single-threaded runtime, each yield lets every other task run once: all
        // twenty are now waiting for the one read.
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        assert_eq!(source.reads(), 1, "one read for all");
        source.release.add_permits(1);
        for request in waiting {
            assert!(matches!(request.await.unwrap(), Loaded::Found(_)));
        }
        assert_eq!(source.reads(), 1, "one read for all");
        assert!(matches!(
            cache.get(&digest, now, DatabaseState::default()),
            Lookup::Found(_)
        ));
        // Another digest is another read.
        let other = FakeSource::new(None, 1);
        let unknown = KeyDigest::of("unknown");
        assert!(matches!(
            cache.load(&unknown, now, other.as_ref()).await,
            Loaded::Missing
        ));
        assert_eq!(other.reads(), 1);
    }

    #[tokio::test]
    async fn a_read_overtaken_by_an_invalidation_is_read_again_and_not_stored() {
        let cache = Arc::new(VerificationCache::new(
            60,
            Duration::from_secs(60),
            Arc::default(),
        ));
        let live = record(None);
        let digest = live.digest;
        let source = FakeSource::new(Some(live.clone()), 0);
        let now = Timestamp::now();
        let request = {
            let (cache, source) = (cache.clone(), source.clone());
            tokio::spawn(async move { cache.load(&digest, now, source.as_ref()).await })
        };
        // The read has begun with the key live; now it is revoked, and the cache told.
        source.started.notified().await;
        *source.record.lock().unwrap() = Some(CredentialRecord {
            revoked_at: Some(now),
            ..live
        });
        cache.invalidate(&digest);
        source.release.add_permits(2);
        let Loaded::Found(entry) = request.await.unwrap() else {
            panic!("found");
        };
        assert!(
            entry.lifetime.status(Timestamp::from_unix_seconds(0))
                == keyward_core::CredentialStatus::Revoked,
            "the stale read is not served: the key was read again"
        );
        assert_eq!(source.reads(), 2);

        // A read that began before an invalidation is never stored, even when it is the
        // last attempt.
        let stale = FakeSource::new(Some(record(None)), 0);
        let other = stale.record.lock().unwrap().as_ref().unwrap().digest;
        let request = {
            let (cache, stale) = (cache.clone(), stale.clone());
            tokio::spawn(async move { cache.load(&other, now, stale.as_ref()).await })
        };
        for _ in 0..3 {
            stale.started.notified().await;
            cache.invalidate(&other);
            stale.release.add_permits(1);
        }
        assert!(matches!(request.await.unwrap(), Loaded::Found(_)));
        assert_eq!(stale.reads(), 3, "at most three attempts");
        assert!(
            matches!(
                cache.get(&other, now, DatabaseState::default()),
                Lookup::Absent
            ),
            "nothing read before an invalidation is kept"
        );
    }

    #[tokio::test]
    async fn negatives_are_capped_and_expire() {
        let cache = VerificationCache::new(60, Duration::from_secs(60), Arc::default());
        let source = FakeSource::new(None, usize::MAX >> 4);
        let now = Timestamp::now();
        for n in 0..MAX_NEGATIVES + 50 {
            let digest = KeyDigest::of(&n.to_string());
            assert!(matches!(
                cache.load(&digest, now, source.as_ref()).await,
                Loaded::Missing
            ));
        }
        assert_eq!(cache.entries(), MAX_NEGATIVES, "no more than the cap");
        let first = KeyDigest::of("0");
        assert!(matches!(
            cache.get(&first, now, DatabaseState::default()),
            Lookup::Missing
        ));
        let later = now.plus_seconds(NEGATIVE_SECONDS);
        assert!(matches!(
            cache.get(&first, later, DatabaseState::default()),
            Lookup::Absent
        ));
        cache.sweep(later, 0, DatabaseState::default());
        assert_eq!(cache.entries(), 0);
        // Room again.
        let fresh = KeyDigest::of("fresh");
        assert!(matches!(
            cache.load(&fresh, later, source.as_ref()).await,
            Loaded::Missing
        ));
        assert_eq!(cache.entries(), 1);
    }
}
