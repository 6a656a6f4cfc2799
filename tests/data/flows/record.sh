#!/usr/bin/env bash
# Record real `ovs-ofctl dump-flows --names` output from live labs into this directory, after
# some traffic so counters and learned flows are there. Root; run from the repository root
# under the shared lock:
#   flock /tmp/nlab-integration.lock tests/data/flows/record.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="${PYTHON:-.venv/bin/python}"
lab() { "$py" -m lab.cli "$@"; }
dump() {  # LAB NODE BRIDGE
  lab exec "$1" "$2" -- ovs-ofctl dump-flows --names "$3" > "$here/$1-$2-$3.txt"
}
trap 'for l in classic-vlan classic-gre classic-vxlan classic-ovsfw; do lab down $l >/dev/null 2>&1 || true; done' EXIT
lab up classic-vlan
lab exec classic-vlan vm1 -- ping -c 3 -i 0.2 -W 1 192.168.1.12
lab exec classic-vlan ext1 -- ping -c 2 -i 0.2 -W 1 203.0.113.102
sleep 1.2   # OVS refreshes flow counters about once a second
dump classic-vlan compute1 br-int
dump classic-vlan compute1 br-vlan
dump classic-vlan network1 br-ex
dump classic-vlan network1 br-int
lab down classic-vlan
lab up classic-gre
lab exec classic-gre vm1 -- ping -c 3 -i 0.2 -W 1 192.168.1.12
sleep 1.2
dump classic-gre compute1 br-tun
dump classic-gre compute1 br-int
lab down classic-gre
lab up classic-vxlan
lab exec classic-vxlan vm1 -- ping -c 3 -i 0.2 -W 1 192.168.1.12
sleep 1.2
dump classic-vxlan compute1 br-tun
lab down classic-vxlan
lab up classic-ovsfw
lab exec classic-ovsfw vm1 -- ping -c 3 -i 0.2 -W 1 192.168.1.12
lab exec classic-ovsfw vm1 -- ping -c 2 -i 0.2 -W 1 192.168.1.14 || true    # vm4: no security group
lab exec classic-ovsfw ext1 -- ping -c 2 -i 0.2 -W 1 203.0.113.102
sleep 1.2
dump classic-ovsfw compute1 br-int
dump classic-ovsfw compute2 br-int
lab down classic-ovsfw
