//! The floor and the hot path: `sha256_key` hashes one key (what any verification must do at
//! least), `verify_cached` runs the whole in-memory verification of a cached key: format and
//! checksum, SHA-256, cache look-up, revoked / expired / rate-limit checks, last use.
//!
//! `app_healthz` and `app_me` run whole requests through the router in process (no sockets):
//! what authentication adds to a request, without the kernel's share or its noise.
//!
//! `cargo bench -p keyward-server --bench verify`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use keyward_core::{
    Brand, CredentialId, CredentialKind, Email, KeyDigest, Name, OrganizationId, PlaintextKey,
    ScopeCatalog, Timestamp, UserId,
};
use keyward_server::auth::{UsageRecorder, Verifier};
use keyward_server::metrics::Metrics;
use keyward_server::{AppState, Config};
use keyward_store::{Creator, NewCredential, NewOrganization, NewOwner};
use tower::ServiceExt;

/// The allocator the `keyward` binary uses, so that the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let key = PlaintextKey::generate(&Brand::default(), CredentialKind::ApiKey).unwrap();
    let presented = key.expose_secret().to_owned();
    let (verifier, store) = runtime.block_on(async {
        let store = keyward_store::open(&url).await.unwrap();
        let organization = OrganizationId::generate();
        let owner = UserId::generate();
        store
            .create_organization(
                &keyward_store::AuditContext::SYSTEM,
                NewOrganization {
                    id: organization,
                    name: Name::parse("Bench").unwrap(),
                    created_at: Timestamp::now(),
                    external_id: None,
                    policy: Default::default(),
                    unique_name: false,
                },
                NewOwner::Create {
                    id: owner,
                    email: Email::parse("bench@example.com").unwrap(),
                    password_hash: "unused".into(),
                },
                Some(NewCredential {
                    id: CredentialId::generate(CredentialKind::ApiKey),
                    organization_id: organization,
                    project_id: None,
                    name: Name::parse("bench").unwrap(),
                    digest: key.digest(),
                    hint: key.hint(),
                    scopes: {
                        let catalog = ScopeCatalog::builtin();
                        catalog.to_names(&catalog.all())
                    },
                    created_at: Timestamp::now(),
                    expires_at: Some(Timestamp::now().plus_seconds(3600)),
                    rate_limit: None,
                    allowed_cidrs: None,
                    created_by: Creator::User(owner),
                    rotated_from: None,
                    metadata: keyward_core::Metadata::default(),
                    credits: None,
                }),
            )
            .await
            .unwrap();
        let verifier = Arc::new(Verifier::new(
            store.clone(),
            &Config {
                cache_max_age: Duration::from_secs(3600),
                outage_grace: Duration::from_secs(3600),
                ..Config::default()
            },
            Arc::new(UsageRecorder::default()),
            Arc::new(Metrics::default()),
        ));
        assert!(
            verifier
                .verify(&presented, None, keyward_server::auth::Accept::Any)
                .await
                .is_ok(),
            "warm the cache"
        );
        (verifier, store)
    });

    c.bench_function("sha256_key", |b| {
        b.iter(|| KeyDigest::of(black_box(presented.as_str())))
    });
    c.bench_function("verify_cached", |b| {
        b.iter(|| {
            let outcome = verifier.verify_cached(
                black_box(presented.as_str()),
                None,
                keyward_server::auth::Accept::Any,
            );
            assert!(matches!(outcome, Some(Ok(_))));
            outcome
        })
    });

    let app = keyward_server::app(AppState::new(store, Config::default()));
    let request = |path: &str, key: Option<&str>| {
        let mut builder = Request::get(path);
        if let Some(key) = key {
            builder = builder.header("authorization", format!("Bearer {key}"));
        }
        builder.body(Body::empty()).unwrap()
    };
    let status = runtime.block_on(app.clone().oneshot(request("/v1/me", Some(&presented))));
    assert_eq!(status.unwrap().status(), 200, "warm the app's own cache");
    c.bench_function("app_healthz", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = app
                .clone()
                .oneshot(request("/healthz", None))
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap()
        })
    });
    c.bench_function("app_me", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = app
                .clone()
                .oneshot(request("/v1/me", Some(&presented)))
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
