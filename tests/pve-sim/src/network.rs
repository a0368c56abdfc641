//! Deterministic guest network identities, so every run reports the same addresses.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Proxmox's own OUI, which PVE uses for the MAC addresses it generates.
const PROXMOX_OUI: [u8; 3] = [0xBC, 0x24, 0x11];

/// The MAC address the simulator assigns to `net{index}` of `vmid`.
pub(crate) fn default_mac(vmid: u32, index: u8) -> [u8; 6] {
    // The low 24 bits of the vmid make the MAC unique within any realistic fleet; the interface
    // index goes into the top nibble so net1 differs from net0.
    let [_, high, mid, low] = vmid.to_be_bytes();
    [
        PROXMOX_OUI[0],
        PROXMOX_OUI[1],
        PROXMOX_OUI[2],
        high ^ (index << 4),
        mid,
        low,
    ]
}

/// The IPv4 address a guest reports when the fleet seed did not fix one.
pub(crate) fn default_ipv4(vmid: u32) -> Ipv4Addr {
    // Unique for every vmid below 64,000 and never a network, gateway or broadcast address.
    let third = ((vmid / 250) % 256) as u8;
    let fourth = (vmid % 250 + 2) as u8;
    Ipv4Addr::new(10, 1, third, fourth)
}

/// Formats a MAC the way PVE writes it into a VM config (upper case).
pub(crate) fn format_mac_upper(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Formats a MAC the way the QEMU guest agent reports it (lower case).
pub(crate) fn format_mac_lower(mac: [u8; 6]) -> String {
    format_mac_upper(mac).to_ascii_lowercase()
}

/// Parses `AA:BB:CC:DD:EE:FF` in either case.
pub(crate) fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// The SLAAC link-local address (EUI-64) a Linux guest derives from its MAC.
pub(crate) fn link_local(mac: [u8; 6]) -> Ipv6Addr {
    let pair = |a: u8, b: u8| u16::from_be_bytes([a, b]);
    Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        pair(mac[0] ^ 0x02, mac[1]),
        pair(mac[2], 0xff),
        pair(0xfe, mac[3]),
        pair(mac[4], mac[5]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trips_through_config_text() {
        let mac = default_mac(108, 0);
        assert_eq!(format_mac_upper(mac), "BC:24:11:00:00:6C");
        assert_eq!(parse_mac(&format_mac_upper(mac)), Some(mac));
        assert_eq!(parse_mac(&format_mac_lower(mac)), Some(mac));
        assert_eq!(parse_mac("BC:24:11:00:00"), None);
        assert_eq!(parse_mac("BC:24:11:00:00:6C:01"), None);
        assert_eq!(parse_mac("BC:24:11:00:00:ZZ"), None);
    }

    #[test]
    fn link_local_follows_eui64() {
        let mac = [0xBC, 0x24, 0x11, 0xAA, 0xBB, 0xCC];
        assert_eq!(link_local(mac).to_string(), "fe80::be24:11ff:feaa:bbcc");
    }

    #[test]
    fn default_ipv4_is_unique_across_a_large_fleet() {
        let mut seen = std::collections::HashSet::new();
        for vmid in 100..64_000 {
            let ip = default_ipv4(vmid);
            assert!(ip.octets()[3] >= 2 && ip.octets()[3] <= 251);
            assert!(seen.insert(ip), "duplicate address for vmid {vmid}");
        }
        assert_eq!(default_ipv4(101), Ipv4Addr::new(10, 1, 0, 103));
    }
}
