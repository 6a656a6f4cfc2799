"""Stands in for `tcpdump -w -` in unit tests of lab/tools/capture.py (no root, no interfaces):

    fake_tcpdump.py PCAP MODE

Says it is listening the way tcpdump does, writes PCAP's bytes to stdout, then waits for
SIGINT and prints tcpdump's report. MODE: normal | drops (the report counts drops) |
exit (stops by itself after writing, like tcpdump -c) | silent (never says it listens) |
fail (an error instead) | stubborn (ignores SIGINT, so it has to be killed, no report).
"""

import signal
import sys
import time

pcap, mode = sys.argv[1], sys.argv[2]
stop = []
signal.signal(signal.SIGINT, (lambda *_: None) if mode == "stubborn" else (lambda *_: stop.append(1)))
if mode == "fail":
    sys.stderr.write("tcpdump: eth9: No such device exists\n(SIOCGIFHWADDR: No such device)\n")
    sys.exit(1)
if mode != "silent":
    sys.stderr.write("tcpdump: listening on eth9, link-type EN10MB (Ethernet), snapshot length 256 bytes\n")
    sys.stderr.flush()
data = open(pcap, "rb").read() if pcap != "-" else b""
n = 0
if data:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    import dpkt, io
    n = len(list(dpkt.pcap.Reader(io.BytesIO(data))))
deadline = time.monotonic() + 20
while not stop and mode != "exit" and time.monotonic() < deadline:
    time.sleep(0.01)
if mode == "stubborn":
    time.sleep(30)
dropped = 7 if mode == "drops" else 0
sys.stderr.write(f"{n} packets captured\n{n + dropped} packets received by filter\n{dropped} packets dropped by kernel\n")
