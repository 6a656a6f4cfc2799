#!/usr/bin/env bash
# Installs what neutron-lab needs on Debian 12 / Ubuntu 22.04+, as root, and makes `lab`
# available as /usr/local/bin/lab. Safe to run again. Used by the README, by CI (.ci/run) and
# by the Vagrantfile beside it.
#
#   sudo vagrant/provision.sh            # install
#   sudo vagrant/provision.sh --demo     # install, then bring up classic-vlan and run its checks
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ "$(id -u)" -ne 0 ]; then
  echo "provision.sh: run as root (sudo $0 $*)" >&2
  exit 1
fi

packages=(openvswitch-switch tcpdump iptables ipset iproute2 iputils-ping ethtool dnsmasq-base haproxy busybox graphviz mininet python3 python3-venv python3-pip)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The lab starts its own ovsdb-server/ovs-vswitchd, dnsmasq and haproxy per node and never
  # uses the system's services: keep the packages' services from starting while installing.
  guard=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    guard=1
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" || { [ -z "$guard" ] || rm -f /usr/sbin/policy-rc.d; exit 1; }
  [ -z "$guard" ] || rm -f /usr/sbin/policy-rc.d
fi

# The lab runs its own ovsdb-server/ovs-vswitchd per node; it never uses the system one.
# br_netfilter lets iptables see bridged traffic (the iptables_hybrid firewall in qbr-); like
# Docker, loading it also turns bridge-nf-call-iptables on for bridges in the host namespace.
# On a VM with the openvswitch kernel module, load it so the kernel datapath is used.
if [ -d "/lib/modules/$(uname -r)" ]; then
  [ -d /proc/sys/net/bridge ] || modprobe br_netfilter 2>/dev/null || true
  [ -d /sys/module/openvswitch ] || modprobe openvswitch 2>/dev/null || true
fi

python=${PYTHON:-python3}
if [ ! -x "$repo/.venv/bin/python" ]; then
  "$python" -m venv "$repo/.venv"
fi
"$repo/.venv/bin/pip" install --quiet -e "$repo[test,bench]"
# an editable install compiles no bytecode, and where PYTHONDONTWRITEBYTECODE is set (CI
# images) Python would never write it: every `lab` command then compiled its modules again
# (lab list 0.17 -> 0.13 s, importing what `lab up` needs 0.29 -> 0.20 s, measured)
"$repo/.venv/bin/python" -m compileall -q "$repo/lab"
ln -sf "$repo/.venv/bin/lab" /usr/local/bin/lab
echo "neutron-lab installed: $(/usr/local/bin/lab --version)"

if [ "${1:-}" = "--demo" ]; then
  lab up classic-vlan --check
fi
