//! Following `GET /v1/keys/events`: each `key` event forgets that key's answers, `reset`
//! forgets them all, `ready` says the stream is caught up (and answers may be cached). When
//! the stream drops, the cache is dropped and nothing is cached until it is caught up again;
//! it reconnects with `Last-Event-ID`, waiting longer after each failure (up to 5 s).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Deserialize;

use crate::Inner;

const FIRST_RETRY: Duration = Duration::from_millis(50);
const LAST_RETRY: Duration = Duration::from_secs(5);
/// Keyward sends a comment every 15 s: a stream silent for twice as long is dead.
const SILENCE: Duration = Duration::from_secs(30);

/// Stops caching when the task following the stream ends, however it ends (aborted, or a
/// panic).
struct Following(Arc<Inner>);

impl Drop for Following {
    fn drop(&mut self) {
        self.0.unsync();
    }
}

pub(crate) async fn follow(inner: Arc<Inner>) {
    let _following = Following(inner.clone());
    let mut retry = FIRST_RETRY;
    loop {
        match follow_once(&inner).await {
            Ok(()) => retry = FIRST_RETRY,
            Err(error) => {
                tracing::warn!(%error, "the stream of key changes broke; reconnecting");
            }
        }
        inner.unsync();
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(LAST_RETRY);
    }
}

/// One connection: `Ok` when Keyward ended it (to be reconnected at once).
async fn follow_once(inner: &Inner) -> Result<(), String> {
    // A client of its own: the other's timeout covers whole answers, and a stream has none.
    let mut request = inner
        .stream_http
        .get(format!("{}/v1/keys/events", inner.config.keyward_url))
        .bearer_auth(&inner.config.verify_key);
    let position = inner
        .position
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if let Some(position) = position {
        request = request.header("last-event-id", position);
    }
    let mut response = request.send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("Keyward answered {}", response.status()));
    }
    let mut buffer = String::new();
    loop {
        let chunk = tokio::time::timeout(SILENCE, response.chunk())
            .await
            .map_err(|_| "no news from Keyward for 30 s".to_owned())?
            .map_err(|e| e.to_string())?;
        let Some(chunk) = chunk else {
            return Ok(());
        };
        for block in blocks(&mut buffer, &chunk)? {
            apply(inner, &block);
        }
    }
}

/// The most a stream may send without ending an event: Keyward's are a few hundred bytes.
const MAX_EVENT_BYTES: usize = 1 << 20;

/// Adds `chunk` to what was received of the stream and takes out the whole events (blocks
/// ending with a blank line). Line ends may be `\n` (Keyward's) or `\r\n` (a proxy's on
/// the way). An error once more than [`MAX_EVENT_BYTES`] wait without an end.
fn blocks(buffer: &mut String, chunk: &[u8]) -> Result<Vec<String>, String> {
    buffer.extend(
        String::from_utf8_lossy(chunk)
            .chars()
            .filter(|c| *c != '\r'),
    );
    let mut blocks = Vec::new();
    while let Some(end) = buffer.find("\n\n") {
        blocks.push(buffer.drain(..end + 2).collect());
    }
    if buffer.len() > MAX_EVENT_BYTES {
        return Err(format!("an event of more than {MAX_EVENT_BYTES} bytes"));
    }
    Ok(blocks)
}

#[derive(Deserialize)]
struct KeyEvent {
    key_id: String,
}

/// Applies one event block to the cache.
fn apply(inner: &Inner, block: &str) {
    let (mut event, mut id, mut data) = ("message", None, String::new());
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = value,
            "id" => id = Some(value),
            "data" => data.push_str(value),
            _ => {}
        }
    }
    match event {
        "key" => match serde_json::from_str::<KeyEvent>(&data) {
            Ok(changed) => inner.forget(&changed.key_id),
            // Not understood: forget everything rather than risk keeping it.
            Err(_) => inner.clear(),
        },
        "reset" => inner.clear(),
        "ready" => inner.synced.store(true, Ordering::SeqCst),
        _ => {}
    }
    if let Some(id) = id {
        *inner.position.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_cut_at_blank_lines_whatever_the_line_ends() {
        let mut buffer = String::new();
        assert_eq!(
            blocks(&mut buffer, b"id: 1\nevent: key\n").unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            blocks(&mut buffer, b"data: {}\n\nid: 2\r\n\r").unwrap(),
            ["id: 1\nevent: key\ndata: {}\n\n"]
        );
        assert_eq!(blocks(&mut buffer, b"\n").unwrap(), ["id: 2\n\n"]);
        assert!(buffer.is_empty());
        let endless = vec![b'x'; MAX_EVENT_BYTES + 1];
        assert!(blocks(&mut buffer, &endless).is_err());
    }
}
