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

/// The TCP peer's address, canonical (an IPv4-mapped address as IPv4).
fn peer(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip().to_canonical())
}

/// Resolves the request's client address; `None` without a peer (a request made in-process,
/// in tests). Behind trusted proxies it is stored in the request as [`ClientAddress`];
/// otherwise it is the peer, which the request holds already (nothing more to store).
pub fn resolve(request: &mut axum::extract::Request, trusted: &[Cidr]) -> Option<IpAddr> {
    let peer = peer(request.extensions())?;
    if trusted.is_empty() {
        return Some(peer);
    }
    let forwarded = request.headers().get_all(X_FORWARDED_FOR).iter();
    let client = keyward_core::network::client_address_from_header(
        peer,
        forwarded.map(axum::http::HeaderValue::as_bytes),
        trusted,
    );
    request.extensions_mut().insert(ClientAddress(client));
    Some(client)
}

/// Whether the request's TCP peer is one of the `trusted` proxies.
pub fn peer_is_trusted(parts: &Parts, trusted: &[Cidr]) -> bool {
    peer(&parts.extensions).is_some_and(|peer| trusted.iter().any(|range| range.contains(peer)))
}

/// The request's client address, as [`resolve`] found it.
pub fn of(parts: &Parts) -> Option<IpAddr> {
    match parts.extensions.get::<ClientAddress>() {
        Some(ClientAddress(address)) => Some(*address),
        None => peer(&parts.extensions),
    }
}
