//! An upstream for `bench/proxy.sh`: an HTTP/1.1 service that answers every request `200 ok`
//! after waiting `WAIT_MS` milliseconds, as a service waiting on its own database would. Each
//! connection has a thread that sleeps for the wait, so waits are as long as asked (an async
//! timer would round them up to its next millisecond tick).
//!
//!   cargo run --release -p keyward-server --example waiting_upstream -- 127.0.0.1:9000 1

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

const ANSWER: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n";

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(address), Some(wait)) = (args.next(), args.next()) else {
        eprintln!("usage: waiting_upstream ADDRESS WAIT_MS");
        return std::process::ExitCode::from(2);
    };
    let Some(wait) = wait
        .parse::<f64>()
        .ok()
        .and_then(|ms| Duration::try_from_secs_f64(ms / 1000.0).ok())
    else {
        eprintln!("WAIT_MS is a number of milliseconds");
        return std::process::ExitCode::from(2);
    };
    let listener = match TcpListener::bind(&address) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: cannot listen on {address}: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || serve(stream, wait));
    }
    std::process::ExitCode::SUCCESS
}

/// Answers the requests of one kept-alive connection until the client closes it.
fn serve(mut stream: TcpStream, wait: Duration) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut received = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let head_end = loop {
            if let Some(at) = received.windows(4).position(|end| end == b"\r\n\r\n") {
                break at + 4;
            }
            let read = stream.read(&mut chunk)?;
            if read == 0 {
                return Ok(());
            }
            received.extend_from_slice(&chunk[..read]);
        };
        let body = content_length(&received[..head_end]);
        while received.len() < head_end + body {
            let read = stream.read(&mut chunk)?;
            if read == 0 {
                return Ok(());
            }
            received.extend_from_slice(&chunk[..read]);
        }
        received.drain(..head_end + body);
        std::thread::sleep(wait);
        stream.write_all(ANSWER)?;
    }
}

/// The request's `Content-Length` (0 without one; chunked bodies are not expected here).
fn content_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0)
}
