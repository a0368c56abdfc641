#!/usr/bin/env bash
# Creates the virtualenv the peer benchmarks run in, with pinned versions, and does nothing when
# it is already complete. The venv is ${ORCH_BENCH_VENV:-$HOME/.cache/orch-bench-venv}.
#
# Everything comes from PyPI: the `ansible` package bundles the collections, among them
# community.general and community.proxmox (where community.general's Proxmox modules live now;
# community.general redirects to it). Ansible Galaxy is not needed, so this works where only PyPI
# is reachable.
set -euo pipefail

VENV="${ORCH_BENCH_VENV:-$HOME/.cache/orch-bench-venv}"
PYTHON="${PYTHON:-python3}"
# One place for the pins; the stamp records them, so changing a pin rebuilds the venv.
PINS=(
  "requests==2.34.2"
  "proxmoxer==2.3.0"
  "ansible-core==2.19.14"
  "ansible==12.3.0"
)
STAMP="$VENV/.orch-bench-pins"
WANT="$(printf '%s\n' "${PINS[@]}")"

if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
  echo "setup.sh: $VENV is complete (${PINS[*]}); nothing to do"
  exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "setup.sh: creating the virtualenv $VENV with $("$PYTHON" --version 2>&1)"
  mkdir -p "$(dirname "$VENV")"
  "$PYTHON" -m venv "$VENV"
else
  echo "setup.sh: $VENV exists but its pins differ or are incomplete; installing them"
fi

echo "setup.sh: installing ${PINS[*]} (ansible is large: a first install takes a few minutes)"
"$VENV/bin/python" -m pip install --disable-pip-version-check --quiet "${PINS[@]}"

# The playbook needs these modules; fail here, not in the middle of a benchmark.
for module in community.proxmox.proxmox_vm_info community.general.proxmox_vm_info ansible.builtin.uri; do
  if ! ANSIBLE_NOCOLOR=1 "$VENV/bin/ansible-doc" --json "$module" >/dev/null 2>&1; then
    echo "setup.sh: $module is missing from $VENV after the install; delete $VENV and run again" >&2
    exit 1
  fi
done

printf '%s\n' "${PINS[@]}" >"$STAMP"
echo "setup.sh: $VENV is ready: $("$VENV/bin/ansible-playbook" --version | sed -n 1p), $("$VENV/bin/python" -c 'import requests, proxmoxer; print("requests", requests.__version__, "proxmoxer", proxmoxer.__version__)')"
