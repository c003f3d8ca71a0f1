//! Address ranges: the networks a credential may be used from (`allowed_cidrs`), and the
//! proxies whose `X-Forwarded-For` Keyward believes (`--trusted-proxies`).
//!
//! Addresses are compared in canonical form: an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`,
//! what a dual-stack socket reports for an IPv4 client) is the IPv4 address it maps.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// At most this many ranges per credential: enough for any office or cloud egress list, and a
/// bound on what each verification scans.
pub const MAX_NETWORKS: usize = 64;

/// An address range, `192.0.2.0/24` or `2001:db8::/32`; a bare address is its own range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidNetwork(String);

impl Cidr {
    /// Reads `address[/prefix]`. A range with bits set past its prefix (`10.1.2.3/8`) is
    /// refused with the range it probably means, rather than silently widened or narrowed.
    pub fn parse(text: &str) -> Result<Self, InvalidNetwork> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().map_err(|_| {
            InvalidNetwork(format!(
                "`{}` is not an IPv4 or IPv6 address range, such as 192.0.2.0/24 or 2001:db8::/32",
                shorten(text)
            ))
        })?;
        let network = network.to_canonical();
        let width = width(network);
        let prefix = match prefix {
            None => width,
            Some(digits) => digits
                .parse::<u8>()
                .ok()
                .filter(|bits| *bits <= width && !digits.starts_with('+'))
                .ok_or_else(|| {
                    InvalidNetwork(format!(
                        "`{}`: the prefix length must be 0 to {width}",
                        shorten(text)
                    ))
                })?,
        };
        let cidr = Self {
            network: masked(network, prefix),
            prefix,
        };
        if cidr.network != network {
            return Err(InvalidNetwork(format!(
                "`{}` has bits set past its prefix; the range is {cidr}",
                shorten(text)
            )));
        }
        Ok(cidr)
    }

    /// Whether `address` lies in the range.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        width(address) == width(self.network) && masked(address, self.prefix) == self.network
    }

    /// Whether every address of `other` lies in this range.
    pub fn covers(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && self.contains(other.network)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn shorten(text: &str) -> String {
    text.chars().take(60).collect()
}

fn width(address: IpAddr) -> u8 {
    match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn masked(address: IpAddr, prefix: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

/// A non-empty set of ranges, kept sorted and without duplicates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Networks(Box<[Cidr]>);

impl Networks {
    /// Reads a list of ranges: at least one, at most [`MAX_NETWORKS`]. Every mistake is
    /// reported in one message.
    pub fn parse<S: AsRef<str>>(texts: &[S]) -> Result<Self, InvalidNetwork> {
        if texts.is_empty() {
            return Err(InvalidNetwork(
                "list at least one range, or send null to allow every address".into(),
            ));
        }
        if texts.len() > MAX_NETWORKS {
            return Err(InvalidNetwork(format!(
                "at most {MAX_NETWORKS} ranges; {} were sent",
                texts.len()
            )));
        }
        let mut ranges = Vec::with_capacity(texts.len());
        let mut mistakes = Vec::new();
        for text in texts {
            match Cidr::parse(text.as_ref()) {
                Ok(cidr) => ranges.push(cidr),
                Err(InvalidNetwork(message)) => mistakes.push(message),
            }
        }
        if !mistakes.is_empty() {
            return Err(InvalidNetwork(mistakes.join("; ")));
        }
        ranges.sort_unstable();
        ranges.dedup();
        Ok(Self(ranges.into_boxed_slice()))
    }

    /// Whether `address` lies in one of the ranges.
    pub fn allows(&self, address: IpAddr) -> bool {
        self.0.iter().any(|range| range.contains(address))
    }

    /// Whether every range lies inside one of `outer`'s: a credential limited to `outer` may
    /// grant only such limits.
    pub fn is_within(&self, outer: &Networks) -> bool {
        self.0
            .iter()
            .all(|range| outer.0.iter().any(|cap| cap.covers(range)))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Cidr> {
        self.0.iter()
    }

    /// The ranges as text, in order.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(Cidr::to_string).collect()
    }

    /// The stored form: the ranges separated by single spaces.
    pub fn to_storage(&self) -> String {
        self.to_strings().join(" ")
    }

    /// Reads the stored form.
    pub fn from_storage(text: &str) -> Result<Self, InvalidNetwork> {
        let parts: Vec<&str> = text.split_ascii_whitespace().collect();
        Self::parse(&parts)
    }
}

/// A list of ranges as text: `["10.0.0.0/8", "2001:db8::/32"]`.
impl serde::Serialize for Networks {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(Cidr::to_string))
    }
}

impl fmt::Display for Networks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_strings().join(", "))
    }
}

/// The client of a request that came through `peer`, given the `X-Forwarded-For` values in
/// the order received: `peer` itself unless it is one of `trusted`; otherwise the right-most
/// forwarded address that is not trusted (the one the last trusted proxy saw connect), or
/// the left-most when every one is. An entry that is not an address ends the walk at the
/// last address known: nothing left of it can be believed.
pub fn client_address<'a>(
    peer: IpAddr,
    forwarded_for: impl Iterator<Item = &'a str>,
    trusted: &[Cidr],
) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.iter().any(|range| range.contains(peer)) {
        return peer;
    }
    let entries: Vec<&str> = forwarded_for.flat_map(|value| value.split(',')).collect();
    let mut client = peer;
    for entry in entries.iter().rev() {
        let Some(address) = forwarded_address(entry.trim()) else {
            return client;
        };
        client = address;
        if !trusted.iter().any(|range| range.contains(address)) {
            return address;
        }
    }
    client
}

/// [`client_address`] from the raw `X-Forwarded-For` header values, entry by entry: a proxy
/// appends the address it saw to whatever the client sent, so an entry that is not text
/// (which HTTP servers accept) must not make the whole header, with the proxy's own entry,
/// unreadable. It reads as garbage, left of the proxy's entry.
pub fn client_address_from_header<'a>(
    peer: IpAddr,
    forwarded_for: impl Iterator<Item = &'a [u8]>,
    trusted: &[Cidr],
) -> IpAddr {
    let entries = forwarded_for
        .flat_map(|value| value.split(|byte| *byte == b','))
        .map(|entry| std::str::from_utf8(entry).unwrap_or("?"));
    client_address(peer, entries, trusted)
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`192.0.2.1:5000`,
/// `[2001:db8::1]:5000`), as some proxies write it.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    if let Ok(address) = entry.parse::<IpAddr>() {
        return Some(address.to_canonical());
    }
    if let Ok(socket) = entry.parse::<std::net::SocketAddr>() {
        return Some(socket.ip().to_canonical());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn cidrs(texts: &[&str]) -> Vec<Cidr> {
        texts.iter().map(|t| Cidr::parse(t).unwrap()).collect()
    }

    #[test]
    fn ranges_parse_and_match() {
        let range = Cidr::parse("192.0.2.0/24").unwrap();
        assert!(range.contains(ip("192.0.2.200")));
        assert!(range.contains(ip("::ffff:192.0.2.7")), "IPv4-mapped");
        assert!(!range.contains(ip("192.0.3.1")));
        assert!(!range.contains(ip("2001:db8::1")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("192.0.2.1")));
        assert_eq!(
            Cidr::parse("203.0.113.9").unwrap().to_string(),
            "203.0.113.9/32"
        );
        assert_eq!(Cidr::parse("::1").unwrap().to_string(), "::1/128");
        assert_eq!(
            Cidr::parse("::ffff:10.0.0.0/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("2001:db8::1")));
    }

    #[test]
    fn mistakes_are_named() {
        let error = Cidr::parse("10.1.2.3/8").unwrap_err().to_string();
        assert!(error.contains("10.0.0.0/8"), "{error}");
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/+8",
            "10.0.0.0/",
            "example.com",
            "",
            "1.2.3/24",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
        let error = Networks::parse(&["nope", "10.0.0.0/40"])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`nope`") && error.contains("0 to 32"),
            "{error}"
        );
        assert!(Networks::parse::<&str>(&[]).is_err());
        let many: Vec<String> = (0..=MAX_NETWORKS)
            .map(|i| format!("10.0.{i}.0/24"))
            .collect();
        assert!(Networks::parse(&many).is_err());
    }

    #[test]
    fn lists_are_sorted_deduplicated_and_round_trip() {
        let networks = Networks::parse(&["2001:db8::/32", "10.0.0.0/8", "10.0.0.0/8"]).unwrap();
        assert_eq!(networks.to_storage(), "10.0.0.0/8 2001:db8::/32");
        assert_eq!(
            Networks::from_storage(&networks.to_storage()).unwrap(),
            networks
        );
        assert!(networks.allows(ip("10.9.9.9")) && networks.allows(ip("2001:db8::5")));
        assert!(!networks.allows(ip("11.0.0.1")));
    }

    #[test]
    fn containment() {
        let outer = Networks::parse(&["10.0.0.0/8", "2001:db8::/32"]).unwrap();
        assert!(
            Networks::parse(&["10.1.0.0/16", "2001:db8:1::/48"])
                .unwrap()
                .is_within(&outer)
        );
        assert!(Networks::parse(&["10.0.0.0/8"]).unwrap().is_within(&outer));
        assert!(!Networks::parse(&["10.0.0.0/7"]).unwrap().is_within(&outer));
        assert!(
            !Networks::parse(&["10.1.0.0/16", "192.0.2.1"])
                .unwrap()
                .is_within(&outer)
        );
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_hop() {
        let trusted = cidrs(&["127.0.0.1", "10.0.0.0/8"]);
        let peer = ip("127.0.0.1");
        let client = |values: &[&str]| client_address(peer, values.iter().copied(), &trusted);
        // A peer not trusted is the client whatever it forwards.
        assert_eq!(
            client_address(ip("198.51.100.1"), ["203.0.113.9"].into_iter(), &trusted),
            ip("198.51.100.1")
        );
        assert_eq!(client(&[]), peer);
        assert_eq!(client(&["203.0.113.9"]), ip("203.0.113.9"));
        // A client's own spoofed entries sit left of the one the proxy appended.
        assert_eq!(client(&["1.1.1.1, 203.0.113.9"]), ip("203.0.113.9"));
        assert_eq!(
            client(&["1.1.1.1", "203.0.113.9, 10.0.0.5"]),
            ip("203.0.113.9")
        );
        assert_eq!(client(&["10.0.0.7, 10.0.0.5"]), ip("10.0.0.7"));
        assert_eq!(client(&["[2001:db8::1]:443"]), ip("2001:db8::1"));
        assert_eq!(client(&["203.0.113.9:5000"]), ip("203.0.113.9"));
        assert_eq!(client(&["::ffff:203.0.113.9"]), ip("203.0.113.9"));
        // Garbage stops the walk at the last address known.
        assert_eq!(client(&["203.0.113.9, unknown"]), peer);
        assert_eq!(client(&["203.0.113.9, garbage, 10.0.0.5"]), ip("10.0.0.5"));
    }
}
