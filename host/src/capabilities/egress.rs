//! Where a connection really goes: a granted host name is checked again after DNS resolution.
//!
//! A grant names hosts, but a name can resolve anywhere, including to the machine itself or to
//! a cloud's metadata service (169.254.169.254), which hands out credentials. So every address
//! a connection would use (a resolved name, or an IP address written in the URL or target) is
//! checked: loopback, link-local, "this host" and known cloud-metadata addresses are refused
//! unless the grant names that very address literally (`http://127.0.0.1:8080`, `127.0.0.1:22`).
//! A name that resolves to several addresses keeps only the allowed ones.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

/// A connection refused by the address check; HTTP and SSH turn it into `error.denied`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressDenied(pub String);

impl std::fmt::Display for EgressDenied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EgressDenied {}

/// The kind of address a name may not silently resolve to, or `None` for an ordinary address.
pub fn guarded_kind(ip: IpAddr) -> Option<&'static str> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => guarded_v4(v4),
        IpAddr::V6(v6) => guarded_v6(v6),
    }
}

fn guarded_v4(ip: Ipv4Addr) -> Option<&'static str> {
    const ALIBABA_METADATA: Ipv4Addr = Ipv4Addr::new(100, 100, 100, 200);
    if ip == Ipv4Addr::new(169, 254, 169, 254) || ip == ALIBABA_METADATA {
        Some("a cloud metadata address")
    } else if ip.is_link_local() {
        Some("a link-local address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.octets()[0] == 0 {
        // 0.0.0.0/8: Linux connects 0.0.0.0 to the local host.
        Some("a \"this host\" address")
    } else {
        None
    }
}

fn guarded_v6(ip: Ipv6Addr) -> Option<&'static str> {
    // AWS's IPv6 instance metadata endpoint.
    const AWS_METADATA: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
    if ip == AWS_METADATA {
        Some("a cloud metadata address")
    } else if ip.segments()[0] & 0xffc0 == 0xfe80 {
        Some("a link-local address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_unspecified() {
        Some("a \"this host\" address")
    } else {
        None
    }
}

/// Which guarded addresses one connection may reach: those its grant names literally.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AddressPolicy {
    /// No check at all (the operator's own `orch ssh trust`, never a plugin).
    unrestricted: bool,
    /// Guarded addresses named literally by the grant, canonical and sorted.
    named: Vec<IpAddr>,
}

impl AddressPolicy {
    /// Guarded addresses are refused except `named` (the grant's literal addresses).
    pub fn allowing(named: impl IntoIterator<Item = IpAddr>) -> Self {
        let mut named: Vec<IpAddr> = named.into_iter().map(|ip| ip.to_canonical()).collect();
        named.sort();
        named.dedup();
        AddressPolicy {
            unrestricted: false,
            named,
        }
    }

    /// Every address is allowed (for commands the operator types, not for plugins).
    pub fn unrestricted() -> Self {
        AddressPolicy {
            unrestricted: true,
            named: Vec::new(),
        }
    }

    /// `Ok` when a connection to `ip` (reached as `host`) is allowed; otherwise why not.
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), EgressDenied> {
        let ip = ip.to_canonical();
        if self.unrestricted || self.named.contains(&ip) {
            return Ok(());
        }
        match guarded_kind(ip) {
            None => Ok(()),
            Some(kind) => {
                let reached =
                    if host.trim_start_matches('[').trim_end_matches(']') == ip.to_string() {
                        format!("{ip} is {kind}")
                    } else {
                        format!("`{host}` resolves to {ip}, {kind}")
                    };
                Err(EgressDenied(format!(
                    "{reached}; orch connects there only when the grant names that address itself (a rule for `{ip}`, not a host name or a wildcard)"
                )))
            }
        }
    }

    /// The allowed addresses among `addrs`; an error when none is left.
    pub fn filter(
        &self,
        host: &str,
        addrs: Vec<SocketAddr>,
    ) -> Result<Vec<SocketAddr>, EgressDenied> {
        let mut refused = None;
        let mut kept = Vec::with_capacity(addrs.len());
        for addr in addrs {
            match self.check(host, addr.ip()) {
                Ok(()) => kept.push(addr),
                Err(e) => {
                    refused.get_or_insert(e);
                }
            }
        }
        match (kept.is_empty(), refused) {
            (true, Some(why)) => Err(why),
            _ => Ok(kept),
        }
    }
}

/// A future returned by [`Resolver::lookup`].
pub type Lookup = Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send>>;

/// Turns a host name into addresses. The system's resolver in production; tests feed their own.
pub trait Resolver: Send + Sync + 'static {
    /// The addresses of `host`, with `port`.
    fn lookup(&self, host: &str, port: u16) -> Lookup;
}

/// The operating system's resolver (getaddrinfo, through tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn lookup(&self, host: &str, port: u16) -> Lookup {
        let host = host.to_string();
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}

/// The process's resolver, shared.
pub fn system_resolver() -> Arc<dyn Resolver> {
    Arc::new(SystemResolver)
}

/// Why no address could be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// The policy refused every address.
    Denied(EgressDenied),
    /// The name did not resolve.
    Lookup(String),
}

/// The addresses a connection to `host:port` may use: an IP address is checked as is, a name
/// is resolved and each of its addresses checked.
pub async fn resolve_checked(
    resolver: &dyn Resolver,
    host: &str,
    port: u16,
    policy: &AddressPolicy,
) -> Result<Vec<SocketAddr>, ResolveError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        policy.check(host, ip).map_err(ResolveError::Denied)?;
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs = resolver
        .lookup(bare, port)
        .await
        .map_err(|e| ResolveError::Lookup(format!("cannot resolve `{host}`: {e}")))?;
    if addrs.is_empty() {
        return Err(ResolveError::Lookup(format!(
            "`{host}` resolves to no address"
        )));
    }
    policy.filter(host, addrs).map_err(ResolveError::Denied)
}

/// reqwest's DNS hook: resolves through a [`Resolver`] and applies one [`AddressPolicy`].
/// IP addresses written in a URL never reach a resolver; the HTTP capability checks those
/// itself before sending.
pub struct GuardedDns {
    resolver: Arc<dyn Resolver>,
    policy: AddressPolicy,
}

impl GuardedDns {
    /// A hook resolving with `resolver` under `policy`.
    pub fn new(resolver: Arc<dyn Resolver>, policy: AddressPolicy) -> Self {
        GuardedDns { resolver, policy }
    }
}

impl reqwest::dns::Resolve for GuardedDns {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.resolver.clone();
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port in.
            match resolve_checked(resolver.as_ref(), &host, 0, &policy).await {
                Ok(addrs) => Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs),
                Err(ResolveError::Denied(e)) => Err(Box::new(e) as _),
                Err(ResolveError::Lookup(m)) => Err(m.into()),
            }
        })
    }
}

/// The [`EgressDenied`] somewhere in an error's chain, if any.
pub fn denial_in<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a EgressDenied> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(d) = err.downcast_ref::<EgressDenied>() {
            return Some(d);
        }
        current = err.source();
    }
    None
}

/// A resolver answering from a fixed table, for tests.
#[cfg(test)]
pub struct StaticResolver(pub std::collections::HashMap<String, Vec<IpAddr>>);

#[cfg(test)]
impl StaticResolver {
    /// One name, its addresses.
    pub fn one(name: &str, ips: &[&str]) -> Arc<dyn Resolver> {
        let ips = ips.iter().map(|ip| ip.parse().unwrap()).collect();
        Arc::new(StaticResolver([(name.to_string(), ips)].into()))
    }
}

#[cfg(test)]
impl Resolver for StaticResolver {
    fn lookup(&self, host: &str, port: u16) -> Lookup {
        let found = self.0.get(host).cloned();
        let host = host.to_string();
        Box::pin(async move {
            match found {
                Some(ips) => Ok(ips
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, port))
                    .collect()),
                None => Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no such host {host}"),
                )),
            }
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
    fn metadata_link_local_loopback_and_this_host_are_guarded() {
        for (addr, kind) in [
            ("169.254.169.254", "metadata"),
            ("169.254.10.1", "link-local"),
            ("127.0.0.1", "loopback"),
            ("127.8.9.10", "loopback"),
            ("0.0.0.0", "this host"),
            ("::1", "loopback"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("::ffff:169.254.169.254", "metadata"),
            ("::ffff:127.0.0.1", "loopback"),
            ("fd00:ec2::254", "metadata"),
            ("::", "this host"),
        ] {
            let got = guarded_kind(ip(addr)).unwrap_or("none");
            assert!(got.contains(kind), "{addr}: {got}");
        }
        for ordinary in [
            "10.0.0.4",
            "192.168.1.10",
            "8.8.8.8",
            "fec0::1",
            "2001:db8::1",
        ] {
            assert_eq!(guarded_kind(ip(ordinary)), None, "{ordinary}");
        }
    }

    #[test]
    fn a_guarded_address_passes_only_when_named() {
        let none = AddressPolicy::allowing([]);
        let err = none
            .check("metadata.test", ip("169.254.169.254"))
            .unwrap_err();
        assert!(
            err.0
                .contains("`metadata.test` resolves to 169.254.169.254")
                && err.0.contains("metadata"),
            "{err}"
        );
        assert!(none.check("10.0.0.4", ip("10.0.0.4")).is_ok());
        let named = AddressPolicy::allowing([ip("127.0.0.1")]);
        assert!(named.check("localhost", ip("127.0.0.1")).is_ok());
        assert!(named.check("localhost", ip("::ffff:127.0.0.1")).is_ok());
        assert!(named.check("localhost", ip("127.0.0.2")).is_err());
        assert!(named.check("localhost", ip("::1")).is_err());
        assert!(
            AddressPolicy::unrestricted()
                .check("x", ip("169.254.169.254"))
                .is_ok()
        );
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_name_resolving_to_metadata_or_loopback_is_refused_after_resolution() {
        let resolver = StaticResolver(
            [
                ("metadata.test".to_string(), vec![ip("169.254.169.254")]),
                ("localhost".to_string(), vec![ip("::1"), ip("127.0.0.1")]),
                (
                    "mixed.test".to_string(),
                    vec![ip("169.254.169.254"), ip("10.0.0.4")],
                ),
            ]
            .into(),
        );
        let none = AddressPolicy::allowing([]);
        let denied = block_on(resolve_checked(&resolver, "metadata.test", 80, &none));
        assert!(
            matches!(&denied, Err(ResolveError::Denied(e)) if e.0.contains("169.254.169.254")),
            "{denied:?}"
        );
        let denied = block_on(resolve_checked(&resolver, "localhost", 80, &none));
        assert!(matches!(denied, Err(ResolveError::Denied(_))), "{denied:?}");
        // Granting 127.0.0.1 literally lets `localhost` through, on that address only.
        let named = AddressPolicy::allowing([ip("127.0.0.1")]);
        let ok = block_on(resolve_checked(&resolver, "localhost", 8080, &named)).unwrap();
        assert_eq!(ok, vec!["127.0.0.1:8080".parse::<SocketAddr>().unwrap()]);
        // The guarded address of a mixed answer is dropped, the ordinary one kept.
        let ok = block_on(resolve_checked(&resolver, "mixed.test", 443, &none)).unwrap();
        assert_eq!(ok, vec!["10.0.0.4:443".parse::<SocketAddr>().unwrap()]);
        // Literal addresses are checked without a lookup.
        assert!(matches!(
            block_on(resolve_checked(&resolver, "[::1]", 22, &none)),
            Err(ResolveError::Denied(_))
        ));
        assert!(matches!(
            block_on(resolve_checked(&resolver, "nowhere.test", 22, &none)),
            Err(ResolveError::Lookup(_))
        ));
    }

    #[test]
    fn the_denial_is_found_in_an_error_chain() {
        #[derive(Debug)]
        struct Outer(EgressDenied);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("outer")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(EgressDenied("no".into()));
        assert_eq!(denial_in(&e).map(|d| d.0.as_str()), Some("no"));
    }
}
