//! A service that verifies Keyward keys in its own memory.
//!
//!   KEYWARD_URL=http://127.0.0.1:8080 KEYWARD_VERIFY_KEY=kwk_… \
//!     cargo run -p keyward-verify --example service -- 127.0.0.1:9000
//!
//! `KEYWARD_VERIFY_KEY` is a key of the organization holding `keys:verify`; the routes are
//! those of `keyward_verify::example`.

use keyward_verify::{Verifier, VerifierConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keyward = std::env::var("KEYWARD_URL").map_err(|_| "set KEYWARD_URL")?;
    let key = std::env::var("KEYWARD_VERIFY_KEY").map_err(|_| "set KEYWARD_VERIFY_KEY")?;
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9000".to_owned());
    let verifier = Verifier::new(VerifierConfig::new(keyward, key));
    verifier.follow();
    let app = keyward_verify::example::router(verifier);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("example service listening on http://{listen}");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .await?;
    Ok(())
}
