//! Keyward at scale: a SQLite database with `KEYWARD_SCALE_KEYS` keys (one million by
//! default), the median latency of a cold verification (a cache miss, so one indexed read),
//! the database reads per second a flood of unknown (well-formed) keys causes, and the
//! memory a cache holding every key takes.
//!
//! `bench/scale.sh` runs it: `cargo bench -p keyward-server --bench scale`. With
//! `KEYWARD_SCALE_DATABASE=postgres` it runs on a throw-away PostgreSQL cluster instead (the
//! server binaries from `PATH` or `/usr/lib/postgresql/*/bin`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use keyward_core::{
    Brand, CredentialId, CredentialKind, Email, KeyDigest, Name, OrganizationId, PlaintextKey,
    ScopeNames, Timestamp, UserId,
};
use keyward_server::Config;
use keyward_server::auth::{UsageRecorder, VerificationCache, Verifier};
use keyward_server::metrics::Metrics;
use keyward_store::testing::TempPostgres;
use keyward_store::{CredentialRecord, NewOrganization, NewOwner};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// The allocator the `keyward` binary uses, so that the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SAMPLES: usize = 2_000;
const BATCH: usize = 20_000;
const FLOOD_KEYS: usize = 200_000;
const FLOOD_CLIENTS: usize = 64;

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter here.
    let keys: usize = std::env::var("KEYWARD_SCALE_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run(keys));
}

async fn run(keys: usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scale.db");
    let postgres = std::env::var("KEYWARD_SCALE_DATABASE").is_ok_and(|db| db == "postgres");
    let cluster = postgres.then(|| {
        TempPostgres::start()
            .unwrap_or_else(|error| panic!("{error}"))
            .expect("KEYWARD_SCALE_DATABASE=postgres needs PostgreSQL (Debian package postgresql)")
    });
    let url = match &cluster {
        Some(cluster) => cluster.create_database().await.unwrap(),
        None => format!("sqlite://{}", path.display()),
    };
    let store = keyward_store::open(&url).await.unwrap();
    let organization = OrganizationId::generate();
    let owner = UserId::generate();
    store
        .create_organization(
            &keyward_store::AuditContext::SYSTEM,
            NewOrganization {
                id: organization,
                name: Name::parse("Scale").unwrap(),
                created_at: Timestamp::now(),
                external_id: None,
                policy: Default::default(),
                unique_name: false,
            },
            NewOwner::Create {
                id: owner,
                email: Email::parse("scale@example.com").unwrap(),
                password_hash: "unused".into(),
            },
            None,
        )
        .await
        .unwrap();

    // Seed straight into the table, in large transactions.
    let started = Instant::now();
    let scopes = ScopeNames::from_storage("instances:read projects:read").unwrap();
    let samples = if postgres {
        seed_postgres(&url, keys, organization, owner, &scopes).await
    } else {
        seed_sqlite(&path, keys, organization, owner, &scopes).await
    };
    let seeded = started.elapsed();
    println!(
        "keys: {keys} in {}, seeded in {:.1} s",
        if postgres { "PostgreSQL" } else { "SQLite" },
        seeded.as_secs_f64()
    );

    // Cold verification: every sampled key is a cache miss, so one indexed read each.
    let verifier = Verifier::new(
        store.clone(),
        &Config {
            cache_max_age: Duration::from_secs(3600),
            outage_grace: Duration::from_secs(3600),
            ..Config::default()
        },
        Arc::new(UsageRecorder::default()),
        Arc::new(Metrics::default()),
    );
    let lookups_before = store.stats().credential_lookups;
    let mut micros = Vec::with_capacity(samples.len());
    for key in &samples {
        let started = Instant::now();
        let verified = verifier
            .verify(key, None, keyward_server::auth::Accept::Any)
            .await;
        micros.push(started.elapsed().as_secs_f64() * 1e6);
        assert!(verified.is_ok(), "a seeded key verifies");
    }
    assert_eq!(
        store.stats().credential_lookups - lookups_before,
        samples.len() as u64,
        "each sample was a miss"
    );
    micros.sort_by(f64::total_cmp);
    println!(
        "cold verification (cache miss, one database read), {} keys: median {:.1} µs, p99 {:.1} µs",
        micros.len(),
        percentile(&micros, 0.5),
        percentile(&micros, 0.99)
    );

    // A flood of unknown keys, from many clients at once: each key is new, so each is one
    // database read (then remembered as unknown).
    let verifier = Arc::new(verifier);
    let flood: Vec<String> = (0..FLOOD_KEYS)
        .map(|_| {
            PlaintextKey::generate(&Brand::default(), CredentialKind::ApiKey)
                .unwrap()
                .expose_secret()
                .to_owned()
        })
        .collect();
    let per_client = flood.len().div_ceil(FLOOD_CLIENTS);
    let lookups_before = store.stats().credential_lookups;
    let started = Instant::now();
    let clients: Vec<_> = flood
        .chunks(per_client)
        .map(|keys| {
            let (verifier, keys) = (verifier.clone(), keys.to_vec());
            tokio::spawn(async move {
                for key in &keys {
                    assert!(
                        verifier
                            .verify(key, None, keyward_server::auth::Accept::Any)
                            .await
                            .is_err()
                    );
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let reads = store.stats().credential_lookups - lookups_before;
    assert_eq!(reads, FLOOD_KEYS as u64, "each unknown key was read once");
    println!(
        "unknown-key flood, {FLOOD_CLIENTS} clients, {FLOOD_KEYS} keys: {:.0} database reads/s",
        reads as f64 / elapsed
    );
    drop(verifier);

    // Memory: a cache holding every key.
    let cache = VerificationCache::new(
        3600,
        std::time::Duration::from_secs(3600),
        Default::default(),
    );
    let before = resident_bytes();
    let created = Timestamp::now();
    for n in 0..keys {
        cache.insert(
            CredentialRecord {
                id: CredentialId::generate(CredentialKind::ApiKey),
                digest: KeyDigest::of(&format!("{n}")),
                organization_id: organization,
                project_id: None,
                name: Name::from_trusted(format!("key {n}")),
                hint: String::new(),
                scopes: scopes.clone(),
                created_at: created,
                expires_at: None,
                revoked_at: None,
                last_used_at: None,
                rate_limit: None,
                allowed_cidrs: None,
                created_by_user: Some(owner),
                rotated_from: None,
                rotation: None,
                exposure: None,
                metadata: keyward_core::Metadata::default(),
                organization_suspended: false,
                credits: None,
                identity_limits: None,
            },
            created,
        );
    }
    let after = resident_bytes();
    assert_eq!(cache.entries(), keys);
    println!(
        "cache: {} entries, {:.1} MiB resident, {:.0} bytes per entry",
        cache.entries(),
        (after - before) as f64 / (1024.0 * 1024.0),
        (after - before) as f64 / keys as f64
    );
    store.close().await;
}

/// Inserts `keys` API keys straight into SQLite and returns a sample of them.
async fn seed_sqlite(
    path: &std::path::Path,
    keys: usize,
    organization: OrganizationId,
    owner: UserId,
    scopes: &ScopeNames,
) -> Vec<String> {
    let mut connection = SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .unwrap();
    let stride = (keys / SAMPLES).max(1);
    let mut samples = Vec::with_capacity(SAMPLES);
    let now = Timestamp::now().unix_seconds();
    for batch_start in (0..keys).step_by(BATCH) {
        let mut tx = connection.begin().await.unwrap();
        for n in batch_start..(batch_start + BATCH).min(keys) {
            let key = PlaintextKey::generate(&Brand::default(), CredentialKind::ApiKey).unwrap();
            sqlx::query(
                "INSERT INTO credentials (id, kind, organization_id, name, secret_sha256, hint, \
                 scopes, created_at, created_by_user) VALUES (?1, 'api_key', ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .bind(CredentialId::generate(CredentialKind::ApiKey).as_uuid())
            .bind(organization.as_uuid())
            .bind(format!("key {n}"))
            .bind(key.digest().as_bytes().to_vec())
            .bind(key.hint())
            .bind(scopes.to_storage())
            .bind(now)
            .bind(owner.as_uuid())
            .execute(&mut *tx)
            .await
            .unwrap();
            if n % stride == 0 && samples.len() < SAMPLES {
                samples.push(key.expose_secret().to_owned());
            }
        }
        tx.commit().await.unwrap();
    }
    samples
}

/// Inserts `keys` API keys straight into PostgreSQL, a batch per statement, and returns a
/// sample of them.
async fn seed_postgres(
    url: &str,
    keys: usize,
    organization: OrganizationId,
    owner: UserId,
    scopes: &ScopeNames,
) -> Vec<String> {
    let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
    let stride = (keys / SAMPLES).max(1);
    let mut samples = Vec::with_capacity(SAMPLES);
    let now = Timestamp::now().unix_seconds();
    for batch_start in (0..keys).step_by(BATCH) {
        let batch = batch_start..(batch_start + BATCH).min(keys);
        let (mut ids, mut names, mut digests, mut hints) = (vec![], vec![], vec![], vec![]);
        for n in batch {
            let key = PlaintextKey::generate(&Brand::default(), CredentialKind::ApiKey).unwrap();
            ids.push(CredentialId::generate(CredentialKind::ApiKey).as_uuid());
            names.push(format!("key {n}"));
            digests.push(key.digest().as_bytes().to_vec());
            hints.push(key.hint());
            if n % stride == 0 && samples.len() < SAMPLES {
                samples.push(key.expose_secret().to_owned());
            }
        }
        sqlx::query(
            "INSERT INTO credentials (id, kind, organization_id, name, secret_sha256, hint, \
             scopes, created_at, created_by_user) \
             SELECT id, 'api_key', $5, name, digest, hint, $6, $7, $8 \
             FROM UNNEST($1::uuid[], $2::text[], $3::bytea[], $4::text[]) AS t(id, name, digest, hint)",
        )
        .bind(ids)
        .bind(names)
        .bind(digests)
        .bind(hints)
        .bind(organization.as_uuid())
        .bind(scopes.to_storage())
        .bind(now)
        .bind(owner.as_uuid())
        .execute(&mut connection)
        .await
        .unwrap();
    }
    samples
}
