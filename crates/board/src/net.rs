//! Who is asking: the TCP peer, or — only when the peer is one of the
//! `--trusted-proxies` — the address the proxies say they forwarded.
//!
//! The rule: walk `X-Forwarded-For` from the right (the hop the peer added)
//! and take the first address that is not a trusted proxy. Entries left of
//! it were written by the client and are ignored, so a client cannot pick
//! its own address for the rate limits by sending the header itself. With
//! no trusted proxies (the default) the header is never read.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use axum::http::HeaderMap;

/// An address block: `10.0.0.0/8`, `::1/128`, or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// True if `ip` is inside the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(input: &str) -> Result<Self, String> {
        let text = input.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{input}` is not an IP address or CIDR block"))?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{input}`: the prefix length must be 0 to {max}"))?,
        };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The proxies whose `X-Forwarded-For` and `X-Forwarded-Proto` are
/// believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Trusts the peers inside `nets`.
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(nets)
    }

    /// True if `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }

    /// The client's address: `peer`, or the right-most address of
    /// `X-Forwarded-For` that is not a trusted proxy when `peer` is one.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut current = peer.to_canonical();
        if !self.contains(current) {
            return current;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        for hop in hops.iter().rev() {
            if !self.contains(current) {
                break;
            }
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => current = ip.to_canonical(),
                // Garbage: nothing left of it can be believed.
                Err(_) => break,
            }
        }
        current
    }

    /// True if a trusted proxy says the client came over HTTPS.
    pub fn forwarded_https(&self, peer: IpAddr, headers: &HeaderMap) -> bool {
        self.contains(peer)
            && headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|n| n.parse().expect("net")).collect())
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_str(value).expect("ascii"),
        );
        headers
    }

    #[test]
    fn blocks_contain_their_addresses_only() {
        let net: IpNet = "10.1.0.0/16".parse().expect("net");
        assert!(net.contains(ip("10.1.200.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.0.9")), "v4-mapped v6");
        let one: IpNet = "::1".parse().expect("net");
        assert!(one.contains(ip("::1")) && !one.contains(ip("::2")));
        let all: IpNet = "0.0.0.0/0".parse().expect("net");
        assert!(all.contains(ip("203.0.113.7")));
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("proxy".parse::<IpNet>().is_err());
    }

    #[test]
    fn the_header_is_ignored_unless_the_peer_is_trusted() {
        let headers = forwarded("198.51.100.1");
        assert_eq!(
            proxies(&[]).client_ip(ip("127.0.0.1"), &headers),
            ip("127.0.0.1")
        );
        assert_eq!(
            proxies(&["10.0.0.0/8"]).client_ip(ip("127.0.0.1"), &headers),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let trusted = proxies(&["127.0.0.1", "10.0.0.0/8"]);
        // The client claims 1.2.3.4; the first proxy saw 198.51.100.1.
        let headers = forwarded("1.2.3.4, 198.51.100.1, 10.0.0.5");
        assert_eq!(
            trusted.client_ip(ip("127.0.0.1"), &headers),
            ip("198.51.100.1")
        );
        // Only proxies: the left-most one.
        assert_eq!(
            trusted.client_ip(ip("127.0.0.1"), &forwarded("10.0.0.9")),
            ip("10.0.0.9")
        );
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(
            trusted.client_ip(ip("127.0.0.1"), &forwarded("1.2.3.4, bogus")),
            ip("127.0.0.1")
        );
        // No header: the peer.
        assert_eq!(
            trusted.client_ip(ip("127.0.0.1"), &HeaderMap::new()),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn https_is_believed_from_trusted_proxies_only() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let trusted = proxies(&["127.0.0.1"]);
        assert!(trusted.forwarded_https(ip("127.0.0.1"), &headers));
        assert!(!trusted.forwarded_https(ip("127.0.0.2"), &headers));
        assert!(!proxies(&[]).forwarded_https(ip("127.0.0.1"), &headers));
    }
}
