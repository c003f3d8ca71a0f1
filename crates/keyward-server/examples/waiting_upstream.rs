//! An upstream for `bench/proxy.sh`: an HTTP/1.1 service on one thread that answers every
//! request `200 ok` after waiting `WAIT_MS` milliseconds, as a service waiting on its own
//! database would. (tokio's timer counts whole milliseconds: a wait of 1 ms takes 1 to 2.)
//!
//!   cargo run --release -p keyward-server --example waiting_upstream -- 127.0.0.1:9000 1

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(address), Some(wait)) = (args.next(), args.next()) else {
        eprintln!("usage: waiting_upstream ADDRESS WAIT_MS");
        return std::process::ExitCode::from(2);
    };
    let Ok(wait) = wait.parse::<u64>().map(Duration::from_millis) else {
        eprintln!("WAIT_MS is a whole number of milliseconds");
        return std::process::ExitCode::from(2);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let served = runtime
        .map_err(|error| error.to_string())
        .and_then(|runtime| runtime.block_on(serve(&address, wait)));
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(address: &str, wait: Duration) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|error| format!("cannot listen on {address}: {error}"))?;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let answer = service_fn(move |_: Request<Incoming>| async move {
            tokio::time::sleep(wait).await;
            Ok::<_, Infallible>(Response::new(Body::from("ok\n")))
        });
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), answer)
                .await;
        });
    }
}
