//! In-process verification of a warm key: what a service pays per request once Keyward has
//! answered for the key (a SHA-256 of the key, a map look-up and a scope check), to compare
//! with the server's `verify_cached` (`bench/verify.sh`); and the same through the async
//! `verify`; and what an event about a key costs with 100,000 answers kept.
//!
//!   cargo bench -p keyward-verify --bench cached

use criterion::{Criterion, criterion_group, criterion_main};
use keyward_verify::{Identity, Verifier, VerifierConfig};

fn cached(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let verifier = Verifier::new(VerifierConfig::new("http://127.0.0.1:1", "kwk_unused"));
    let key = "kwk_yNGeILriJDLhr8P3NkdZNttxm0A3sDgP4DLnXc";
    verifier.prime(
        key,
        Identity {
            key_id: "key_01m93kv99pezktcfm8a59c0hbj".into(),
            kind: "api_key".into(),
            organization_id: "org_01m93n8xyfejkrnp7kygk7mx63".into(),
            project_id: None,
            scopes: vec!["databases:read".into(), "databases:write".into()],
            expires_at: None,
            external_id: None,
            meta: None,
        },
    );
    // The look-up alone, as the server's `verify_cached` measures its own.
    c.bench_function("keyward_verify_cached", |b| {
        b.iter(|| {
            let identity = verifier
                .verify_cached(std::hint::black_box(key))
                .unwrap()
                .unwrap();
            identity.require("databases:read").unwrap();
        })
    });
    // Through the async `verify` a service calls, on a current-thread runtime.
    c.bench_function("keyward_verify_async", |b| {
        b.iter(|| {
            let identity = runtime
                .block_on(verifier.verify(std::hint::black_box(key), None))
                .unwrap();
            identity.require("databases:read").unwrap();
        })
    });
}

/// An event about one key with 100,000 answers kept: what the stream's reader holds the
/// cache's write lock for (no verification proceeds meanwhile).
fn forget(c: &mut Criterion) {
    let verifier = Verifier::new(VerifierConfig::new("http://127.0.0.1:1", "kwk_unused"));
    let identity = |index: usize| Identity {
        key_id: format!("key_{index:026}"),
        kind: "api_key".into(),
        organization_id: "org_01m93n8xyfejkrnp7kygk7mx63".into(),
        project_id: None,
        scopes: vec!["databases:read".into()],
        expires_at: None,
        external_id: None,
        meta: None,
    };
    for index in 0..100_000 {
        verifier.prime(&format!("kwk_{index:040}"), identity(index));
    }
    c.bench_function("keyward_verify_forget_one_of_100k", |b| {
        b.iter_batched(
            || verifier.prime("kwk_forgotten", identity(100_000)),
            |()| verifier.forget_key(std::hint::black_box(&identity(100_000).key_id)),
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, cached, forget);
criterion_main!(benches);
