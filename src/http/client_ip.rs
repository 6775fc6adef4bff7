//! The client's address: the TCP peer, or, when the peer is a trusted reverse proxy, the last
//! address in `X-Forwarded-For` that is not itself a trusted proxy (what the proxy saw).

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The client of a request from `peer` with `headers`, given the trusted proxy networks.
pub fn resolve(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    // A dual-stack listener sees IPv4 peers as IPv4-mapped IPv6 addresses.
    let peer = peer?.to_canonical();
    if !is_trusted(&peer) {
        return Some(peer);
    }
    // Each proxy appends the address it received from; read from the right, through our
    // own proxies, to the first hop they did not vouch for.
    let mut client = peer;
    for value in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(value) = value.to_str() else {
            return Some(client);
        };
        for hop in value.rsplit(',') {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                return Some(client);
            };
            let ip = ip.to_canonical();
            client = ip;
            if !is_trusted(&ip) {
                return Some(client);
            }
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append("x-forwarded-for", value.parse().unwrap());
        }
        map
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        let spoofed = headers(&["6.6.6.6"]);
        // An untrusted peer's header is ignored.
        assert_eq!(
            resolve(ip("203.0.113.9"), &spoofed, &trusted),
            ip("203.0.113.9")
        );
        // Behind our proxy: the address it saw, not what the client claimed before it.
        let chain = headers(&["6.6.6.6, 198.51.100.7", "10.1.2.3"]);
        assert_eq!(
            resolve(ip("10.0.0.1"), &chain, &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            resolve(ip("::1"), &headers(&["2001:db8::5"]), &trusted),
            ip("2001:db8::5")
        );
        // Garbage stops the walk at the last address we could trust.
        assert_eq!(
            resolve(ip("10.0.0.1"), &headers(&["nonsense"]), &trusted),
            ip("10.0.0.1")
        );
        assert_eq!(
            resolve(ip("10.0.0.1"), &HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
        // IPv4 peers of a dual-stack listener are recognised.
        let mapped = ip("::ffff:10.0.0.1");
        assert_eq!(
            resolve(mapped, &headers(&["198.51.100.7"]), &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            resolve(ip("::ffff:203.0.113.9"), &spoofed, &trusted),
            ip("203.0.113.9")
        );
        // Nothing trusted: always the peer.
        assert_eq!(resolve(ip("10.0.0.1"), &chain, &[]), ip("10.0.0.1"));
    }
}
