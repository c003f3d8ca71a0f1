//! Where the time of a SQLite read goes: one indexed look-up of a key digest among
//! `KEYWARD_READS_KEYS` keys (100,000 by default), reached six ways, from the cheapest
//! access to Keyward's own store. The differences between neighbours price one thing each:
//! statement preparation, the hop to a blocking thread, sqlx's connection worker thread, its
//! pool, and Keyward's decoding of the row. `docs/performance.md` reads the results.
//!
//! `cargo bench -p keyward-store --bench sqlite_reads`

use std::sync::{Arc, Mutex};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use keyward_core::{
    Brand, CredentialId, CredentialKind, Email, KeyDigest, Name, OrganizationId, PlaintextKey,
    Timestamp, UserId,
};
use keyward_store::{NewOrganization, NewOwner};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{ConnectOptions, Row};

const SQL: &str = "SELECT id, name, scopes, created_at, expires_at, revoked_at \
                   FROM credentials WHERE secret_sha256 = ?1";

fn seed(path: &std::path::Path, runtime: &tokio::runtime::Runtime, keys: usize) -> Vec<KeyDigest> {
    let url = format!("sqlite://{}", path.display());
    let organization = OrganizationId::generate();
    let owner = UserId::generate();
    runtime.block_on(async {
        let store = keyward_store::open(&url).await.unwrap();
        store
            .create_organization(
                &keyward_store::AuditContext::SYSTEM,
                NewOrganization {
                    id: organization,
                    name: Name::parse("Reads").unwrap(),
                    created_at: Timestamp::now(),
                    external_id: None,
                    policy: Default::default(),
                    unique_name: false,
                },
                NewOwner::Create {
                    id: owner,
                    email: Email::parse("reads@example.com").unwrap(),
                    password_hash: "unused".into(),
                },
                None,
            )
            .await
            .unwrap();
        store.close().await;
    });
    let mut connection = rusqlite::Connection::open(path).unwrap();
    let tx = connection.transaction().unwrap();
    let mut samples = Vec::new();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO credentials (id, kind, organization_id, name, secret_sha256, hint, \
                 scopes, created_at, created_by_user) \
                 VALUES (?1, 'api_key', ?2, ?3, ?4, 'hint', 'instances:read', ?5, ?6)",
            )
            .unwrap();
        for n in 0..keys {
            let key = PlaintextKey::generate(&Brand::default(), CredentialKind::ApiKey).unwrap();
            let digest = key.digest();
            insert
                .execute(rusqlite::params![
                    CredentialId::generate(CredentialKind::ApiKey)
                        .as_uuid()
                        .as_bytes()
                        .as_slice(),
                    organization.as_uuid().as_bytes().as_slice(),
                    format!("key {n}"),
                    digest.as_bytes().as_slice(),
                    Timestamp::now().unix_seconds(),
                    owner.as_uuid().as_bytes().as_slice(),
                ])
                .unwrap();
            if n % (keys / 1000).max(1) == 0 {
                samples.push(digest);
            }
        }
    }
    tx.commit().unwrap();
    samples
}

fn read_only(path: &std::path::Path) -> rusqlite::Connection {
    let connection = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap();
    connection
        .set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )
        .unwrap();
    connection
}

fn found(connection: &rusqlite::Connection, digest: &KeyDigest, cached: bool) -> bool {
    let read = |statement: &mut rusqlite::Statement<'_>| {
        statement
            .query_row([digest.as_bytes().as_slice()], |row| {
                row.get::<_, String>(1)
            })
            .is_ok()
    };
    if cached {
        read(&mut connection.prepare_cached(SQL).unwrap())
    } else {
        read(&mut connection.prepare(SQL).unwrap())
    }
}

async fn single_hop(connection: &mut sqlx::SqliteConnection, digest: KeyDigest) -> bool {
    sqlx::query(SQL)
        .bind(digest.as_bytes().to_vec())
        .fetch_optional(connection)
        .await
        .unwrap()
        .map(|row| row.get::<String, _>("name"))
        .is_some()
}

fn reads(c: &mut Criterion) {
    let keys: usize = std::env::var("KEYWARD_READS_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reads.db");
    let samples = Arc::new(seed(&path, &runtime, keys));
    let next = {
        let samples = samples.clone();
        let counter = std::sync::atomic::AtomicUsize::new(0);
        move || {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            samples[n % samples.len()]
        }
    };
    let next = Arc::new(next);

    let mut group = c.benchmark_group("sqlite_read");
    group
        .sample_size(50)
        .measurement_time(Duration::from_secs(3));

    let connection = read_only(&path);
    group.bench_function("rusqlite_prepare_each_time", |b| {
        b.iter(|| assert!(found(&connection, &next(), false)))
    });
    group.bench_function("rusqlite_prepared_in_place", |b| {
        b.iter(|| assert!(found(&connection, &next(), true)))
    });
    let shared = Arc::new(Mutex::new(connection));
    group.bench_function("rusqlite_prepared_spawn_blocking", |b| {
        b.to_async(&runtime).iter(|| {
            let (shared, digest) = (shared.clone(), next());
            async move {
                let hit = tokio::task::spawn_blocking(move || {
                    found(&shared.lock().unwrap(), &digest, true)
                })
                .await
                .unwrap();
                assert!(hit);
            }
        })
    });

    let options = SqliteConnectOptions::new().filename(&path).read_only(true);
    let mut single = runtime.block_on(options.connect()).unwrap();
    group.bench_function("sqlx_one_connection", |b| {
        b.iter(|| assert!(runtime.block_on(single_hop(&mut single, next()))))
    });
    let pool = runtime
        .block_on(
            SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options),
        )
        .unwrap();
    group.bench_function("sqlx_pool", |b| {
        b.to_async(&runtime).iter(|| {
            let (pool, digest) = (pool.clone(), next());
            async move {
                let row = sqlx::query(SQL)
                    .bind(digest.as_bytes().to_vec())
                    .fetch_optional(&pool)
                    .await
                    .unwrap();
                assert!(row.is_some());
            }
        })
    });

    let store = runtime
        .block_on(keyward_store::open(&format!("sqlite://{}", path.display())))
        .unwrap();
    group.bench_function("keyward_store", |b| {
        b.to_async(&runtime).iter(|| {
            let (store, digest) = (store.clone(), next());
            async move {
                let record = store.find_credential_by_digest(&digest).await.unwrap();
                assert!(record.is_some());
            }
        })
    });
    group.finish();
    runtime.block_on(store.close());
}

criterion_group!(benches, reads);
criterion_main!(benches);
