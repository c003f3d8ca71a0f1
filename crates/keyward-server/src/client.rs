//! Who the client of a request is: the TCP peer, or, when the peer is a trusted proxy
//! (`--trusted-proxies`), the address it says it forwarded for. Resolved once per request
//! (in `every_request`) and read by everything that cares: network rules of credentials,
//! last addresses, the log-in throttle, failure counts and the audit log.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use keyward_core::Cidr;

/// The client's address, as resolved for the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// Resolves the request's client address and stores it in the request as [`ClientAddress`];
/// `None` without a peer (a request made in-process, in tests).
pub fn resolve(request: &mut axum::extract::Request, trusted: &[Cidr]) -> Option<IpAddr> {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip())?;
    let client = if trusted.is_empty() {
        peer.to_canonical()
    } else {
        // Entry by entry from the raw bytes: a proxy appends the address it saw to whatever
        // the client sent, so an entry that is not text (which hyper accepts) must not make
        // the whole header, with the proxy's own entry, unreadable. It reads as garbage, left
        // of the proxy's entry.
        let forwarded = request
            .headers()
            .get_all(X_FORWARDED_FOR)
            .iter()
            .flat_map(|value| value.as_bytes().split(|byte| *byte == b','))
            .map(|entry| std::str::from_utf8(entry).unwrap_or("?"));
        keyward_core::network::client_address(peer, forwarded, trusted)
    };
    request.extensions_mut().insert(ClientAddress(client));
    Some(client)
}

/// The address `resolve` stored, if any.
pub fn of(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ClientAddress>()
        .map(|ClientAddress(address)| *address)
}
