#!/usr/bin/env python3
"""Checks that peers recorded the same VMs as orch: the same names, vmids, statuses and IPs.

Usage: compare.py ORCH_JSON DIR [DIR...]
  ORCH_JSON  the output of `orch --json eval 'model.fleet.resource.vm'` after `orch run sync-fleet`
  DIR        an output directory of sync_fleet.py or sync_fleet.yml (one <vmName>.json per VM)
Timestamps are ignored. Prints one line per source and exits 1 on any difference.
Standard library only, so it runs with any python3.
"""

import json
import os
import sys

KEYS = ("vmName", "vmid", "status", "ip")


def rows(records):
    """The compared fields of each record, as a set of tuples."""
    return {tuple(r.get(k) for k in KEYS) for r in records}


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    with open(sys.argv[1], encoding="utf-8") as f:
        want = rows(r["attributes"] for r in json.load(f).values())
    with_ip = sum(1 for r in want if r[3])
    print(f"orch: {len(want)} VMs, {with_ip} with an IP")
    ok = True
    for out in sys.argv[2:]:
        records = []
        for name in sorted(os.listdir(out)):
            if name.endswith(".json"):
                with open(os.path.join(out, name), encoding="utf-8") as f:
                    records.append(json.load(f))
        got = rows(records)
        if got == want and len(records) == len(want):
            print(f"{out}: same {len(got)} VMs (names, vmids, statuses, IPs)")
            continue
        ok = False
        print(f"{out}: DIFFERENT: {len(records)} records")
        for r in sorted(want - got, key=str)[:10]:
            print(f"  only in orch: {r}")
        for r in sorted(got - want, key=str)[:10]:
            print(f"  only in {out}: {r}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
