#!/usr/bin/env python3
"""The work of `orch run sync-fleet`, as a user would script it with `requests`.

Logs in to the Proxmox API, lists the node's VMs, asks the guest agent of every running VM for
its interfaces, and writes one JSON record per VM into an output directory. The requests are the
ones orch's proxmox plugin sends, in the same order:

    POST /api2/json/access/ticket                                   (username, password form)
    GET  /api2/json/nodes/{node}/qemu                               (PVEAuthCookie)
    GET  /api2/json/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces   (running VMs only)

The records have the attributes of orch's `proxmox/vm` resource (vmid, vmName, status, ip, node,
timestamp), one file per VM name (`<vmName>.json`; a name shared by several VMs is kept by the
lowest vmid, as orch does). The address is picked as orch's plugin picks it.

Durability: orch's store commits durably, so by default every record is written to a temporary
file, fsync'ed and renamed into place, and the directory is fsync'ed once at the end: when this
exits 0, the records survive a power cut. `--no-fsync` skips the fsyncs, which is what most
hand-written scripts do.

Usage: sync_fleet.py --url URL --node NODE --password-file FILE --out DIR [--user root@pam]
The password is read from a file (first line) so that it never appears in a process listing.
"""

import argparse
import datetime
import ipaddress
import json
import os
import sys

import requests
import urllib3

# TLS certificate verification for every request: off, as in orch's `insecureTls: true` (see main).
VERIFY = False

# Interfaces that exist on the guest but are not how the LAN reaches it (container bridges,
# overlays, VPN tunnels): their addresses are used only when nothing better exists.
VIRTUAL_PREFIXES = (
    "docker", "br-", "veth", "virbr", "cni", "flannel", "cali", "vxlan", "tailscale", "tun",
    "wg", "zt", "lxcbr", "lxdbr", "podman", "kube",
)


def pick_ip(interfaces):
    """The address other machines should use to reach the guest, or None (orch's rule).

    Skips `lo`, loopback and link-local addresses; the first global IPv4 wins, a LAN interface
    beats a container bridge or tunnel, and a global IPv6 address is used only without IPv4.
    """
    best = None  # (rank, address); lower rank wins, the guest's order breaks ties
    for iface in interfaces.get("result") or []:
        name = iface.get("name") or ""
        if name == "lo":
            continue
        virtual = 1 if name.startswith(VIRTUAL_PREFIXES) else 0
        for addr in iface.get("ip-addresses") or []:
            text = (addr.get("ip-address") or "").strip().split("%", 1)[0]
            try:
                ip = ipaddress.ip_address(text)
            except ValueError:
                continue
            if ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast:
                continue
            if ip.version == 4:
                if ip == ipaddress.IPv4Address("255.255.255.255"):
                    continue
                rank = virtual
            else:
                rank = 2 + virtual
            if best is None or rank < best[0]:
                best = (rank, ip)
    return None if best is None else str(best[1])


def agent_ip(session, base, node, vmid):
    """The guest agent's address for a running VM; None when the agent cannot say."""
    url = f"{base}/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces"
    response = session.get(url, verify=VERIFY)
    if response.status_code in (401, 403):
        # Credentials fail for every VM alike: stop instead of warning for each.
        sys.exit(f"sync_fleet.py: GET {url}: {response.status_code} {response.reason}")
    if response.status_code == 500:
        # "No QEMU guest agent configured", "QEMU guest agent is not running", ...: no address.
        return None
    if not response.ok:
        print(f"warning: VM {vmid}: no address from the guest agent: "
              f"{response.status_code} {response.reason}", file=sys.stderr)
        return None
    return pick_ip(response.json().get("data") or {})


def file_name(vm_name):
    """A file name for a VM name (PVE names are DNS names; unnamed VMs are `VM <vmid>`)."""
    return "".join(c if c.isalnum() or c in "._- " else "_" for c in vm_name) + ".json"


def write_record(out, record, durable):
    """Writes one record; with `durable`, to a temporary file that is fsync'ed and renamed."""
    path = os.path.join(out, file_name(record["vmName"]))
    data = json.dumps(record, indent=2).encode() + b"\n"
    if not durable:
        with open(path, "wb") as f:
            f.write(data)
        return
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", required=True, help="https://HOST:8006 (no /api2/json)")
    parser.add_argument("--node", required=True, help="the Proxmox node, e.g. keeb-dev-02")
    parser.add_argument("--password-file", required=True, help="file whose first line is the password")
    parser.add_argument("--out", required=True, help="directory for the per-VM JSON records")
    parser.add_argument("--user", default="root@pam", help="Proxmox user (default root@pam)")
    parser.add_argument("--no-fsync", action="store_true", help="skip the fsyncs (not durable)")
    args = parser.parse_args()

    with open(args.password_file, encoding="utf-8") as f:
        password = f.readline().rstrip("\r\n")

    base = args.url.rstrip("/") + "/api2/json"
    session = requests.Session()
    # Proxmox nodes ship a self-signed certificate, and so does the simulator; the orch side runs
    # with `insecureTls: true`, so this does the same and does not verify the certificate. It is
    # passed on every request (VERIFY), because requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE in
    # the environment override a Session's `verify = False`.
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    login = session.post(f"{base}/access/ticket",
                         data={"username": args.user, "password": password}, verify=VERIFY)
    if not login.ok:
        sys.exit(f"sync_fleet.py: POST {base}/access/ticket: {login.status_code} {login.reason}")
    ticket = login.json()["data"]["ticket"]
    session.cookies.set("PVEAuthCookie", ticket)

    listing = session.get(f"{base}/nodes/{args.node}/qemu", verify=VERIFY)
    if not listing.ok:
        sys.exit(f"sync_fleet.py: GET {listing.url}: {listing.status_code} {listing.reason}")
    vms = []
    for entry in listing.json()["data"]:
        vmid = int(entry["vmid"])
        name = entry.get("name") or ""
        if not name.strip():
            name = f"VM {vmid}"  # as the Proxmox UI (and orch) show an unnamed VM
        vms.append({"vmid": vmid, "vmName": name, "status": entry.get("status") or "unknown"})
    vms.sort(key=lambda vm: vm["vmid"])

    timestamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    timestamp = timestamp.replace("+00:00", "Z")
    os.makedirs(args.out, exist_ok=True)
    seen = set()
    running = 0
    for vm in vms:
        ip = None
        if vm["status"] == "running":
            running += 1
            ip = agent_ip(session, base, args.node, vm["vmid"])
        if vm["vmName"] in seen:
            print(f"warning: VM {vm['vmid']} is also named {vm['vmName']!r}; "
                  "the record keeps the lower vmid", file=sys.stderr)
            continue
        seen.add(vm["vmName"])
        record = dict(vm, ip=ip, node=args.node, timestamp=timestamp)
        write_record(args.out, record, durable=not args.no_fsync)

    if not args.no_fsync:
        fd = os.open(args.out, os.O_RDONLY)
        try:
            os.fsync(fd)  # the renames themselves
        finally:
            os.close(fd)
    print(f"synced {len(vms)} VMs ({running} running) into {args.out}")


if __name__ == "__main__":
    main()
