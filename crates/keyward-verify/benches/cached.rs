//! In-process verification of a warm key: what a service pays per request once Keyward has
//! answered for the key (a SHA-256 of the key, a map look-up and a scope check), to compare
//! with the server's `verify_cached` (`bench/verify.sh`); and the same through the async
//! `verify`.
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

criterion_group!(benches, cached);
criterion_main!(benches);
