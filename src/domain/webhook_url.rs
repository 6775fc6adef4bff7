//! Webhook receivers' addresses: absolute `http` or `https` URLs with a host, no credentials
//! and no fragment, at most [`MAX_LEN`] bytes. Unless a deployment allows it, a receiver may
//! not be on the hub's own networks (loopback, private, link-local, unique-local or
//! unspecified addresses, `localhost`): deliveries would otherwise let any owner make the hub
//! call its neighbours. The same rule applies to the addresses a name resolves to when a
//! delivery is sent (see [`is_internal`]).

use std::net::IpAddr;

use url::{Host, Url};

use crate::error::{AppError, AppResult};

/// The longest receiver URL.
pub const MAX_LEN: usize = 2048;

/// A valid receiver URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(Url);

impl WebhookUrl {
    /// Parses a receiver URL; `field` names the argument in the error. `private` allows
    /// receivers on internal addresses.
    pub fn parse(field: &str, raw: &str, private: bool) -> AppResult<Self> {
        let raw = raw.trim();
        let refuse = |why: &str| Err(AppError::bad_input(field, why.to_owned()));
        if raw.len() > MAX_LEN {
            return refuse(&format!("must be at most {MAX_LEN} bytes long"));
        }
        let Ok(url) = Url::parse(raw) else {
            return refuse("is not an absolute URL");
        };
        if !matches!(url.scheme(), "http" | "https") {
            return refuse("must be an http or https URL");
        }
        if !url.username().is_empty() || url.password().is_some() {
            return refuse("must not carry credentials (the deliveries are signed instead)");
        }
        if url.fragment().is_some() {
            return refuse("must not have a fragment");
        }
        let internal = match url.host() {
            None => return refuse("must name a host"),
            Some(Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                name == "localhost" || name.ends_with(".localhost")
            }
            Some(Host::Ipv4(ip)) => is_internal(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => is_internal(IpAddr::V6(ip)),
        };
        if internal && !private {
            return refuse(
                "points at an internal address, which this hub does not deliver to \
                 (MODELHUB_WEBHOOK_PRIVATE_TARGETS)",
            );
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// Whether an address is one of the hub's own networks' rather than the internet's.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => {
            ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                // 100.64.0.0/10, carrier-grade NAT.
                || (ip.octets()[0] == 100 && (ip.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => is_internal(IpAddr::V4(v4)),
            None => {
                let first = ip.segments()[0];
                ip.is_loopback()
                    || ip.is_unspecified()
                    // fc00::/7, unique local; fe80::/10, link-local.
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receivers_are_public_http_urls() {
        for good in [
            "https://ci.example.com/hooks/modelhub",
            "http://93.184.216.34:8080/x?y=1",
        ] {
            assert!(WebhookUrl::parse("url", good, false).is_ok(), "{good}");
        }
        for bad in [
            "ftp://example.com/",
            "/relative",
            "https://user:pw@example.com/",
            "https://example.com/#frag",
            "http://127.0.0.1:9/",
            "http://localhost/",
            "http://api.localhost/",
            "http://10.1.2.3/",
            "http://192.168.0.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
        ] {
            assert!(WebhookUrl::parse("url", bad, false).is_err(), "{bad}");
        }
        assert!(WebhookUrl::parse("url", "http://127.0.0.1:9/", true).is_ok());
        let long = format!("https://example.com/{}", "a".repeat(MAX_LEN));
        assert!(WebhookUrl::parse("url", &long, true).is_err());
    }
}
