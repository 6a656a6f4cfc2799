"""The metadata service's pure side: constants, haproxy's configuration and the data the
metadata agent and server read. Pure (no I/O): lab/runtime/metadata.py writes and starts.

As Neutron's L3 agent does it (neutron/agent/metadata/driver.py, driver_base.py,
neutron/common/metadata.py, neutron/agent/l3/router_info.py): every router instance's
qrouter- marks TCP to 169.254.169.254:80 arriving on qr-, REDIRECTs it to haproxy on 9697,
and haproxy adds ``X-Neutron-Router-ID`` and forwards to the node's metadata agent over a
unix socket. The agent finds the instance from router id + source address, signs its id
(HMAC-SHA256, shared secret) and asks the lab's metadata server (Nova's stand-in).
"""

from __future__ import annotations

METADATA_IP = "169.254.169.254"     # neutron-lib METADATA_V4_IP
METADATA_CIDR = METADATA_IP + "/32"
METADATA_PORT = 9697                # l3 agent's metadata_port default
METADATA_MARK = "0x1"               # l3 agent's metadata_access_mark default (mask ROUTER_MARK_MASK 0xffff)
