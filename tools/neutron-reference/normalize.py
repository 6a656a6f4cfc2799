"""One normal form for what Neutron's agents build and what the lab renders (stdlib only).

Used twice: by the reference tool (``run``), to turn the raw output of Neutron's classes into
the dumps committed under tests/golden/neutron/, and by tests/unit/test_neutron_reference.py,
to put the lab's renders into the same form before diffing. Any rewrite here must be an
equivalence (two spellings of the same OpenFlow action, iptables-restore ``-I chain N`` from
an empty table versus ``-A chain``); everything else stays a difference for the list.

    python3 normalize.py RAW_DIR OUT_DIR     # raw reference output -> normalised dumps
"""

from __future__ import annotations

import ipaddress
import json
import re
import sys
from pathlib import Path

# ---------------------------------------------------------------- OpenFlow flows

FLOW_DROP_FIELDS = {"cookie", "duration", "n_packets", "n_bytes", "idle_age", "hard_age",
                    "reset_counts", "importance", "send_flow_rem", "out_port", "out_group"}
ETH_PROTO_SHORTHANDS = {"ip", "ipv6", "icmp", "icmp6", "tcp", "tcp6", "udp", "udp6", "sctp",
                        "sctp6", "arp", "rarp", "mpls", "mplsm"}
OFPVID_PRESENT = 0x1000


def split_top(text: str, seps: str = ",") -> list[str]:
    """Split on separators that are not inside parentheses."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch in seps and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def _hex_to_mac(value: str) -> str:
    n = int(value, 16)
    return ":".join(f"{(n >> s) & 0xff:02x}" for s in range(40, -8, -8))


def _is_tagged(match: list[str]) -> bool:
    """Does the match only admit frames that already carry a VLAN tag?"""
    for m in match:
        if m.startswith("dl_vlan="):
            return True
        if m.startswith("vlan_tci="):
            value, _, mask = m.split("=", 1)[1].partition("/")
            if int(value, 16) & OFPVID_PRESENT:
                return True
    return False


def _action(a: str, tagged: bool, last: bool) -> list[str]:
    a = re.sub(r'"([^"]*)"', r"\1", a)
    if a in ("in_port", "IN_PORT"):
        return ["IN_PORT"]
    if a.lower() == "normal":
        return ["NORMAL"]
    if a == "strip_vlan":
        return ["pop_vlan"]
    m = re.fullmatch(r"resubmit\(,(\d+)\)", a)
    if m and last:
        return [f"goto_table:{m.group(1)}"]
    m = re.fullmatch(r"mod_vlan_vid:(\d+)", a)
    if m:
        vid = f"set_field:{int(m.group(1)) + OFPVID_PRESENT}->vlan_vid"
        return [vid] if tagged else ["push_vlan:0x8100", vid]
    m = re.fullmatch(r"mod_dl_src:(\S+)", a)
    if m:
        return [f"set_field:{m.group(1)}->eth_src"]
    m = re.fullmatch(r"load:(0x[0-9a-fA-F]+)->(NXM_\w+)\[\]", a)
    if m:
        value, field = m.groups()
        if field == "NXM_NX_TUN_ID":
            return [f"set_field:{value}->tun_id"]
        if field == "NXM_OF_ARP_OP":
            return [f"set_field:{int(value, 16)}->arp_op"]
        if field == "NXM_NX_ARP_SHA":
            return [f"set_field:{_hex_to_mac(value)}->arp_sha"]
        if field == "NXM_OF_ARP_SPA":
            return [f"set_field:{ipaddress.IPv4Address(int(value, 16))}->arp_spa"]
    if a.startswith("learn("):
        return [re.sub(r"cookie=0x[0-9a-fA-F]+", "cookie=*", a)]
    return [a]


def _sort_output_runs(actions: list[str]) -> list[str]:
    """Consecutive output:X actions send the same packet to each port; their order is the
    order of the copies only (Neutron orders flood ports by ofport number), so sort them."""
    out, run = [], []
    for a in actions + [None]:
        if a is not None and a.startswith("output:"):
            run.append(a)
            continue
        out += sorted(run)
        run = []
        if a is not None:
            out.append(a)
    return out


def normalize_flow(line: str) -> str | None:
    """One flow (ovs-ofctl add-flow syntax or a dump-flows line) in the normal form
    ``table=T priority=P match=... actions=...``; None for headers, comments, blanks."""
    line = line.strip()
    if not line or line.startswith(("#", "NXST_", "OFPST_")):
        return None
    idx = line.find("actions=")
    head, actions = line[:idx], line[idx + len("actions="):]
    table, priority, match = "0", "32768", []
    for f in split_top(head, ", "):
        key, _, value = f.partition("=")
        if key in FLOW_DROP_FIELDS:
            continue
        if key == "table":
            table = value
        elif key == "priority":
            priority = value
        else:
            match.append(f"{key}={value.strip(chr(34))}" if value else key)
    match.sort(key=lambda m: (m not in ETH_PROTO_SHORTHANDS, m))
    tagged = _is_tagged(match)
    acts = split_top(actions)
    out: list[str] = []
    for i, a in enumerate(acts):
        out += _action(a, tagged, i == len(acts) - 1)
    out = _sort_output_runs(out)
    return f"table={table} priority={priority} match={','.join(match) or '*'} actions={','.join(out)}"


def normalize_flows(text: str) -> str:
    flows = [f for f in (normalize_flow(l) for l in text.splitlines()) if f]

    def key(f: str):
        m = re.match(r"table=(\d+) priority=(\d+) (.*)", f)
        return (int(m.group(1)), -int(m.group(2)), m.group(3))
    return "".join(f + "\n" for f in sorted(flows, key=key))


# ---------------------------------------------------------------- iptables

def _tables(text: str) -> dict[str, list[str]]:
    """Table name -> its lines, for the LAST block of each table in an iptables-restore
    input (Neutron's manager re-sends whole tables; the last one is the final state)."""
    tables, current, lines = {}, None, []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            current, lines = line[1:], []
        elif line == "COMMIT":
            tables[current] = lines
            current = None
        elif current is not None:
            lines.append(line)
    return tables


def normalize_iptables(text: str) -> str:
    """``*table``, then every chain (sorted; policies and counters dropped), then
    ``-A chain rule`` in each chain's order. ``-I chain N rule`` lines (restore into an empty
    table) become ``-A`` at position N."""
    out = []
    for table, lines in sorted(_tables(text).items()):
        chains: dict[str, list[tuple[int, str]]] = {}
        for line in lines:
            if line.startswith(":"):
                chains.setdefault(line[1:].split()[0], [])
                continue
            m = re.match(r"-([AI]) (\S+)(?: (\d+))?(?: (.*))?$", line)
            if not m:
                raise ValueError(f"unexpected iptables line: {line!r}")
            op, chain, pos, rule = m.groups()
            if op == "I" and pos is None:
                raise ValueError(f"-I without a position: {line!r}")
            if op == "A" and pos is not None:     # '-A chain 5 ...' cannot happen; a rule word
                rule, pos = f"{pos} {rule or ''}".strip(), None
            rules = chains.setdefault(chain, [])
            rules.append((int(pos) if pos else len(rules) + 1, rule or ""))
        out.append(f"*{table}")
        out += [f":{c}" for c in sorted(chains)]
        for c in sorted(chains):
            out += [f"-A {c} {r}".rstrip() for _, r in sorted(chains[c], key=lambda x: x[0])]
    return "".join(l + "\n" for l in out)


# ---------------------------------------------------------------- dnsmasq, router state

def normalize_ipset(text: str) -> str:
    """The sets an ipset command log (Neutron's ``ipset create/restore/swap/destroy`` calls,
    each restore followed by its input lines) or an ``ipset restore`` input (the lab's) leaves
    behind: ``create NAME TYPE family F`` then its ``add NAME MEMBER`` lines, sets by name,
    members by address. The order the steps took means nothing once they are done."""
    sets: dict[str, tuple[str, set[str]]] = {}
    for line in text.splitlines():
        words = [w for w in line.split() if w != "-exist"]
        words = words[1:] if words[:1] == ["ipset"] else words
        if len(words) < 2:
            continue
        verb, name, rest = words[0], words[1], words[2:]
        if verb == "create":
            sets.setdefault(name, (" ".join(rest), set()))
        elif verb == "add" and rest and name in sets:
            sets[name][1].add(rest[0] if "/" in rest[0] else rest[0] + "/32")
        elif verb == "del" and rest and name in sets:
            sets[name][1].discard(rest[0] if "/" in rest[0] else rest[0] + "/32")
        elif verb == "flush" and name in sets:
            sets[name][1].clear()
        elif verb == "swap" and rest and name in sets and rest[0] in sets:
            (ta, ma), (tb, mb) = sets[name], sets[rest[0]]
            sets[name], sets[rest[0]] = (ta, mb), (tb, ma)
        elif verb == "destroy":
            sets.pop(name, None)
    out = []
    for name in sorted(sets):
        kind, members = sets[name]
        out.append(f"create {name} {kind}")
        out += [f"add {name} {m}" for m in sorted(members, key=lambda m: ipaddress.ip_network(m, strict=False))]
    return "".join(line + "\n" for line in out)


def normalize_sorted_lines(text: str) -> str:
    """Files whose line order does not matter to their reader (dnsmasq hosts, opts, argv)."""
    return "".join(l + "\n" for l in sorted(l.strip() for l in text.splitlines() if l.strip()))


def router_state_from_calls(calls: dict) -> str:
    """The recorded sysctls, addresses, routes, links and GARPs of a router's (or a DHCP
    server's) namespace, one per line."""
    lines = set()
    for cmd in calls["commands"]:
        if "sysctl" in cmd and "-w" in cmd:
            lines |= {f"sysctl {kv}" for kv in cmd[cmd.index("-w") + 1:]}
        elif "arping" in cmd:
            lines.add(f"garp {cmd[cmd.index('-I') + 1]} {cmd[-1]}")
    for name, args, kw in calls["privileged"]:
        if name == "add_ip_address":
            _v, ip, plen, dev, _ns, _scope, brd = (args + [None] * 7)[:7]
            lines.add(f"address {dev} {ip}/{plen}")
            if brd not in (None, "None"):       # its own line: an address differs on its own
                lines.add(f"broadcast {dev} {ip}/{plen} brd {brd}")
        elif name == "add_ip_route":
            cidr = args[1] if len(args) > 1 and args[1] != "None" else "default"
            lines.add(f"route {cidr} via {kw.get('via')} dev {kw.get('device')}")
    for p in calls["plugged"]:
        lines.add(f"link {p['device']} mac {p['mac']} mtu {p['mtu']}")
    return "".join(l + "\n" for l in sorted(lines))


# ---------------------------------------------------------------- raw reference -> dumps

def dumps_from_raw(raw: Path) -> dict[str, str]:
    """Normalised dump files (relative path -> text) from one scenario's raw output."""
    out: dict[str, str] = {}
    for f in sorted(raw.rglob("*.raw")):
        rel = f.relative_to(raw)
        node, name = rel.parts[0], rel.name[:-len(".raw")]
        text = f.read_text()
        if name.endswith(".flows"):
            out[f"{node}/{name}"] = normalize_flows(text)
        elif name == "iptables.restore":
            out[f"{node}/iptables"] = normalize_iptables(text)
        elif name == "ipset":
            out[f"{node}/ipset"] = normalize_ipset(text)
        elif name.endswith(".iptables"):
            out[f"{node}/{name}"] = normalize_iptables(text)
        elif name.endswith(".calls"):
            out[f"{node}/{name[:-len('.calls')]}.net"] = router_state_from_calls(json.loads(text))
        elif len(rel.parts) == 3 and rel.parts[1].startswith("dhcp-"):
            server = f"{node}/{rel.parts[1]}"
            if name == "iptables":
                out[f"{server}.iptables"] = normalize_iptables(text)
            elif name == "calls":
                out[f"{server}.net"] = router_state_from_calls(json.loads(text))
            else:
                out[f"{server}.{name}"] = normalize_sorted_lines(text)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    raw, dest = Path(argv[1]), Path(argv[2])
    dumps = dumps_from_raw(raw)
    if not dumps:
        print(f"no raw reference output under {raw}", file=sys.stderr)
        return 1
    for rel, text in dumps.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
