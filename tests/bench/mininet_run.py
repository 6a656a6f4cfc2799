#!/usr/bin/python3
"""Mininet's side of bench_scale.py: N hosts on one userspace OVS switch, up then down, timed.

Run by bench_scale.py inside a network and mount namespace of its own (``unshare --net
--mount``) with a private ovsdb-server/ovs-vswitchd whose sockets are in $OVS_RUNDIR: Mininet's
``ovs-vsctl`` calls reach that one, never the system's. Prints one JSON line:
{"hosts": N, "up": seconds, "down": seconds}. Needs Debian's python3-mininet (/usr/bin/python3).
"""

import json
import sys
import time

from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.node import OVSSwitch
from mininet.topo import SingleSwitchTopo


def main() -> None:
    n = int(sys.argv[1])
    setLogLevel("error")
    t = time.monotonic()
    net = Mininet(topo=SingleSwitchTopo(k=n), switch=OVSSwitch, controller=None, autoSetMacs=True,
                  build=False, waitConnected=False)
    for sw in net.switches:
        sw.datapath = "user"
        sw.failMode = "standalone"
    net.build()
    net.start()
    up = time.monotonic() - t
    t = time.monotonic()
    net.stop()
    down = time.monotonic() - t
    print(json.dumps({"hosts": n, "up": up, "down": down}))


if __name__ == "__main__":
    main()
