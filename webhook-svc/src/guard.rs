//! The SSRF guard: webhook URLs must be `https` and may not reach private, loopback, link-local,
//! CGNAT, multicast, reserved, IPv4-mapped or metadata addresses. Checked when a subscription is
//! written (a clear 422) and again on every delivery, on the addresses actually connected to: the
//! HTTP client resolves names through [`GuardedResolver`], which hands the client only addresses
//! that pass, so there is no second lookup to race. An operator allow-list (CIDRs, plain `http`)
//! exists for development.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::Url;

/// What the operator allows beyond the public internet.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub allow_http: bool,
    pub allow: Vec<IpNet>,
}

impl Policy {
    /// Whether an address may be called.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.allow.iter().any(|net| net.contains(&ip)) || is_public(ip)
    }

    /// Checks a URL's shape: scheme, host, no credentials. Some(literal) when the host is an IP.
    pub fn check_url(&self, raw: &str) -> Result<Url, String> {
        let url = Url::parse(raw).map_err(|_| "The url field must be a valid URL".to_owned())?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            _ => return Err("The url field must be an https URL".to_owned()),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("The url field must not contain credentials".to_owned());
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("The url field must have a host".to_owned());
        }
        Ok(url)
    }

    /// Resolves the URL's host and checks every address (a name resolving to one private
    /// address among public ones is refused too).
    pub async fn check_target(&self, url: &Url) -> Result<(), String> {
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs: Vec<IpAddr> = match url.host() {
            Some(url::Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
            Some(url::Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
            Some(url::Host::Domain(name)) => tokio::net::lookup_host((name, port))
                .await
                .map_err(|_| format!("The url host {name} does not resolve"))?
                .map(|a| a.ip())
                .collect(),
            None => return Err("The url field must have a host".to_owned()),
        };
        if addrs.is_empty() {
            return Err("The url host does not resolve".to_owned());
        }
        if let Some(bad) = addrs.iter().find(|ip| !self.permits(**ip)) {
            return Err(format!(
                "The url must not point to a private, loopback, link-local or reserved address ({bad})"
            ));
        }
        Ok(())
    }
}

/// IPv4-mapped and -compatible IPv6 addresses are judged as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Public unicast, not special-purpose (RFC 6890 and friends).
pub fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16, cloud metadata included
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7 (fd00:ec2::254 metadata)
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x2001 && s[1] < 0x0200) // IETF protocol assignments 2001::/23: Teredo, ORCHID, benchmarking
        || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // discard-only 100::/64
        || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64: would reach IPv4 behind it
        || s[0] == 0x2002 // 6to4
        || (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0 && s[5] == 0)) // v4-compatible
}

/// The HTTP client's resolver: the system's lookup, then only addresses the policy permits. A
/// name with none left fails as "blocked" without a connection being made.
pub struct GuardedResolver {
    pub policy: Arc<Policy>,
}

/// The error a refused name resolves to (its text marks the attempt as `blocked`).
#[derive(Debug, thiserror::Error)]
#[error("blocked: every address of the host is private or reserved")]
pub struct Blocked;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| policy.permits(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(Blocked) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn special_addresses_are_not_public() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "ff02::1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "2001::a00:1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:10::1",
            "2001:2::1",
            "100::1",
        ] {
            assert!(!is_public(ip(bad)), "{bad}");
        }
        for good in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip(good)), "{good}");
        }
    }

    #[test]
    fn the_allow_list_opens_what_it_names() {
        let policy = Policy {
            allow_http: true,
            allow: vec!["127.0.0.0/8".parse().unwrap()],
        };
        assert!(policy.permits(ip("127.0.0.1")));
        assert!(policy.permits(ip("::ffff:127.0.0.1")));
        assert!(!policy.permits(ip("10.0.0.1")));
        assert!(policy.check_url("http://127.0.0.1:8080/hook").is_ok());
        let strict = Policy::default();
        assert_eq!(
            strict.check_url("http://example.com/").unwrap_err(),
            "The url field must be an https URL"
        );
        assert!(strict.check_url("https://u:p@example.com/").is_err());
        assert!(strict.check_url("ftp://example.com/").is_err());
        assert!(strict.check_url("not a url").is_err());
    }

    #[tokio::test]
    async fn targets_are_checked_on_their_addresses() {
        let strict = Policy::default();
        for url in [
            "https://127.0.0.1/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::1]:8443/",
            "https://169.254.169.254/latest/meta-data",
            "https://localhost/",
            // Other spellings of loopback and "this host" that URL parsers accept: decimal,
            // octal, hex and short IPv4 forms, the unspecified address, and IPv6 forms that
            // carry an IPv4 address (NAT64, Teredo's range).
            "https://2130706433/",
            "https://0177.0.0.1/",
            "https://0x7f.0.0.1/",
            "https://127.1/",
            "https://0.0.0.0/",
            "https://0/",
            "https://[::]/",
            "https://[64:ff9b::7f00:1]/",
            "https://[2001::7f00:1]/",
        ] {
            let u = strict.check_url(url).unwrap();
            assert!(strict.check_target(&u).await.is_err(), "{url}");
        }
    }
}
