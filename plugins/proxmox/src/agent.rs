//! Picking a VM's address from the QEMU guest agent's `network-get-interfaces` answer.

use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The `data` of `GET …/agent/network-get-interfaces`.
#[derive(Debug, Default, Deserialize)]
pub struct AgentInterfaces {
    /// One entry per guest interface, in the guest's order.
    #[serde(default)]
    pub result: Vec<AgentInterface>,
}

/// One guest network interface.
#[derive(Debug, Default, Deserialize)]
pub struct AgentInterface {
    /// Interface name as the guest reports it (`lo`, `eth0`, `docker0`, …).
    #[serde(default)]
    pub name: String,
    /// Addresses on it; guests without a configured interface omit the field.
    #[serde(default, rename = "ip-addresses")]
    pub ip_addresses: Vec<AgentAddress>,
}

/// One address of an interface.
#[derive(Debug, Default, Deserialize)]
pub struct AgentAddress {
    /// The address text; IPv6 link-local ones may carry a `%zone` suffix.
    #[serde(default, rename = "ip-address")]
    pub ip_address: String,
}

// Interfaces that exist on the guest but are not how the rest of the LAN reaches it: container
// bridges and overlay/VPN tunnels. Their addresses are used only when nothing better exists.
const VIRTUAL_PREFIXES: &[&str] = &[
    "docker",
    "br-",
    "veth",
    "virbr",
    "cni",
    "flannel",
    "cali",
    "vxlan",
    "tailscale",
    "tun",
    "wg",
    "zt",
    "lxcbr",
    "lxdbr",
    "podman",
    "kube",
];

fn is_virtual(name: &str) -> bool {
    VIRTUAL_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// An IPv4 address other machines can use (not loopback, link-local, unspecified, broadcast or multicast).
pub fn usable_v4(ip: Ipv4Addr) -> bool {
    !(ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast())
}

/// An IPv6 address other machines can use (not loopback, unspecified, multicast or link-local).
pub fn usable_v6(ip: Ipv6Addr) -> bool {
    let link_local = ip.segments()[0] & 0xffc0 == 0xfe80;
    !(ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() || link_local)
}

/// The address other machines should use to reach the guest, or `None`.
///
/// Loopback (`lo`, 127.0.0.0/8, ::1) and link-local (169.254/16, fe80::/10) addresses are
/// skipped. The first global IPv4 wins; a LAN interface beats a container bridge or tunnel; a
/// global IPv6 address is used only when the guest has no usable IPv4 at all.
pub fn pick_ip(interfaces: &AgentInterfaces) -> Option<String> {
    // (rank, address): lower rank wins, and the guest's order breaks ties.
    let mut best: Option<(u8, IpAddr)> = None;
    for iface in &interfaces.result {
        if iface.name == "lo" {
            continue;
        }
        let virtual_rank = u8::from(is_virtual(&iface.name));
        for addr in &iface.ip_addresses {
            let text = addr.ip_address.trim();
            let text = text.split_once('%').map_or(text, |(ip, _zone)| ip);
            let Ok(ip) = text.parse::<IpAddr>() else {
                continue;
            };
            let rank = match ip {
                IpAddr::V4(v4) if usable_v4(v4) => virtual_rank,
                IpAddr::V6(v6) if usable_v6(v6) => 2 + virtual_rank,
                _ => continue,
            };
            if best.is_none_or(|(r, _)| rank < r) {
                best = Some((rank, ip));
            }
        }
    }
    best.map(|(_, ip)| ip.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: serde_json::Value) -> AgentInterfaces {
        serde_json::from_value(value).expect("agent shape")
    }

    fn iface(name: &str, ips: &[&str]) -> serde_json::Value {
        let addrs: Vec<_> = ips
            .iter()
            .map(|ip| {
                let kind = if ip.contains(':') { "ipv6" } else { "ipv4" };
                json!({"ip-address-type": kind, "ip-address": ip, "prefix": 24})
            })
            .collect();
        json!({"name": name, "hardware-address": "00:00:00:00:00:00", "ip-addresses": addrs})
    }

    #[test]
    fn loopback_listed_first_is_skipped_for_the_lan_ipv4() {
        let data = parse(json!({"result": [
            iface("lo", &["127.0.0.1", "::1"]),
            iface("eth0", &["fe80::be24:11ff:fe5a:1%eth0", "10.0.0.96"]),
        ]}));
        assert_eq!(pick_ip(&data).as_deref(), Some("10.0.0.96"));
    }

    #[test]
    fn loopback_addresses_on_other_interfaces_are_skipped_too() {
        let data = parse(
            json!({"result": [iface("weird", &["127.0.1.1"]), iface("eth0", &["10.0.0.5"])]}),
        );
        assert_eq!(pick_ip(&data).as_deref(), Some("10.0.0.5"));
    }

    #[test]
    fn link_local_only_guest_has_no_ip() {
        let data = parse(json!({"result": [
            iface("lo", &["127.0.0.1"]),
            iface("eth0", &["169.254.10.20", "fe80::1"]),
        ]}));
        assert_eq!(pick_ip(&data), None);
    }

    #[test]
    fn first_global_ipv4_wins_over_later_ones_and_ipv6() {
        let data = parse(json!({"result": [
            iface("eth0", &["2001:db8::5", "10.0.0.33", "10.0.0.34"]),
            iface("eth1", &["192.168.1.2"]),
        ]}));
        assert_eq!(pick_ip(&data).as_deref(), Some("10.0.0.33"));
    }

    #[test]
    fn lan_interface_beats_an_earlier_docker_bridge() {
        let data = parse(json!({"result": [
            iface("docker0", &["172.17.0.1"]),
            iface("eth0", &["10.0.0.208"]),
            iface("tailscale0", &["100.100.1.2"]),
        ]}));
        assert_eq!(pick_ip(&data).as_deref(), Some("10.0.0.208"));
    }

    #[test]
    fn bridge_ipv4_still_beats_global_ipv6() {
        let data = parse(json!({"result": [
            iface("eth0", &["2001:db8::1"]),
            iface("docker0", &["172.17.0.1"]),
        ]}));
        assert_eq!(pick_ip(&data).as_deref(), Some("172.17.0.1"));
    }

    #[test]
    fn global_ipv6_is_the_fallback() {
        let data = parse(json!({"result": [
            iface("lo", &["::1"]),
            iface("eth0", &["fe80::1%eth0", "2001:db8::42"]),
        ]}));
        assert_eq!(pick_ip(&data).as_deref(), Some("2001:db8::42"));
    }

    #[test]
    fn garbage_and_missing_fields_are_ignored() {
        let data = parse(json!({"result": [
            {"name": "eth0"},
            {"ip-addresses": [{"ip-address-type": "ipv4"}]},
            iface("eth1", &["not-an-ip", "0.0.0.0", "224.0.0.1"]),
        ]}));
        assert_eq!(pick_ip(&data), None);
        assert_eq!(pick_ip(&AgentInterfaces::default()), None);
    }
}
