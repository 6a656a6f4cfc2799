"""lab/runtime/nlbatch.py encodes the lab's netlink requests itself; pyroute2's request
compiler (IPBatch) is the reference: for the same arguments the bytes after the header
(type and flags included, sequence number and port id aside) must be the same. No root,
no netlink traffic."""

from __future__ import annotations

import struct

import pytest

pyroute2 = pytest.importorskip("pyroute2")

from lab.runtime import kernel, nlbatch  # noqa: E402

HEADER = struct.Struct("=LHHLL")


def _pyroute2(method: str, *args, **kwargs) -> tuple[int, int, bytes]:
    ipb = pyroute2.IPBatch()
    getattr(ipb, method)(*args, **kwargs)
    data = bytes(ipb.batch)
    length, kind, flags, _seq, _pid = HEADER.unpack_from(data)
    assert length == len(data)
    return kind, flags, data[HEADER.size:]


CASES = [
    ("hybrid bridge", kernel._bridge(ifname="qbr1", mtu=1450, up=True),
     ("link", "add"), dict(ifname="qbr1", kind="bridge", br_stp_state=0, br_forward_delay=0, mtu=1450, state="up")),
    ("wire bridge", kernel._bridge(ifname="physnet1", mtu=None, up=False),
     ("link", "add"), dict(ifname="physnet1", kind="bridge", br_stp_state=0, br_forward_delay=0)),
    ("tap with eth0 in the instance", kernel._veth(ifname="tap1", peer="eth0", peer_netns=5, peer_mac="fa:16:3e:00:00:01",
                                                    mtu=1450, master=7, up=True, mac="fe:16:3e:00:00:01"),
     ("link", "add"), dict(ifname="tap1", kind="veth", master=7, state="up", mtu=1450, address="fe:16:3e:00:00:01",
                           peer={"ifname": "eth0", "net_ns_fd": 5, "address": "fa:16:3e:00:00:01", "mtu": 1450})),
    ("qvb/qvo", kernel._veth(ifname="qvb1", peer="qvo1", peer_netns=None, peer_mac=None, mtu=None, master=None,
                             up=False, mac=None),
     ("link", "add"), dict(ifname="qvb1", kind="veth", peer={"ifname": "qvo1"})),
    ("link up", nlbatch.link_up("qvo1"), ("link", "set"), dict(ifname="qvo1", state="up")),
    ("link get", nlbatch.link_get("eth0"), ("link", "get"), dict(ifname="eth0")),
    ("link del", nlbatch.link_del(9), ("link", "del"), dict(index=9)),
    ("address", nlbatch.addr_add(7, "10.0.0.2", 24), ("addr", "add"), dict(index=7, address="10.0.0.2", prefixlen=24)),
    ("floating IP", nlbatch.addr_add(3, "203.0.113.5", 32), ("addr", "add"),
     dict(index=3, address="203.0.113.5", prefixlen=32)),
    ("default route", nlbatch.default_route("10.0.0.1", 7), ("route", "add"),
     dict(dst="0.0.0.0/0", gateway="10.0.0.1", oif=7)),
    ("route via", nlbatch.route_replace("169.254.169.254/32", "192.168.1.1", 7), ("route", "replace"),
     dict(dst="169.254.169.254/32", gateway="192.168.1.1", oif=7)),
    ("route on-link", nlbatch.route_replace("10.0.0.0/8", None, 7), ("route", "replace"), dict(dst="10.0.0.0/8", oif=7)),
    ("default route replaced", nlbatch.route_replace("0.0.0.0/0", "10.0.0.1", 7), ("route", "replace"),
     dict(dst="0.0.0.0/0", gateway="10.0.0.1", oif=7)),
    ("permanent neighbour", nlbatch.neigh_replace(7, "10.0.0.5", "fa:16:3e:00:00:02", kernel.NUD_PERMANENT),
     ("neigh", "replace"), dict(dst="10.0.0.5", lladdr="fa:16:3e:00:00:02", ifindex=7, state=kernel.NUD_PERMANENT)),
]


@pytest.mark.parametrize("ours, call, kwargs", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_encoded_as_pyroute2_encodes_it(ours, call, kwargs):
    assert ours == _pyroute2(*call, **kwargs)


def test_batch_numbers_and_frames_requests():
    batch = nlbatch.Batch("nlab.x")
    seqs = [batch.add("up", nlbatch.link_up("lo")), batch.add("get", nlbatch.link_get("eth0"))]
    data = bytes(batch._buf)
    first = HEADER.unpack_from(data)
    second = HEADER.unpack_from(data, first[0])
    assert (first[3], second[3]) == tuple(seqs) and seqs[0] != seqs[1]
    assert first[0] + second[0] == len(data) and len(batch) == 2


def test_error_ack_names_the_request_and_the_kernels_reason():
    # an NLMSG_ERROR with NETLINK_CAP_ACK: header, error, the request's header, then the
    # extended ACK message attribute
    request = HEADER.pack(44, 16, 0x605, 42, 0)
    text = b"Device already exists\0"
    attr = struct.pack("=HH", 4 + len(text), 1) + text + b"\0" * (-(4 + len(text)) % 4)
    body = struct.pack("=i", -17) + request + attr
    msg = HEADER.pack(HEADER.size + len(body), nlbatch.NLMSG_ERROR, 0, 42, 0) + body
    assert nlbatch._ext_message(msg) == "Device already exists"


class FakeBatch:
    """Stands in for nlbatch.Batch: records what each send carried; RTM_GETLINK answers
    with an index for the devices that 'exist'."""

    sends: list[list[str]] = []
    existing: dict[str, int] = {}

    def __init__(self, where):
        self.items = []

    def add(self, what, request):
        self.items.append((what, request))
        return len(FakeBatch.sends) * 1000 + len(self.items)

    def send(self, check=True):
        if not self.items:
            return {}
        FakeBatch.sends.append([w for w, _ in self.items])
        replies = {}
        for i, (what, (kind, _flags, payload)) in enumerate(self.items, 1):
            name = what.removeprefix("finding interface ")
            if kind == nlbatch.RTM_GETLINK and name in FakeBatch.existing:
                reply = HEADER.pack(32, nlbatch.RTM_NEWLINK, 0, 0, 0) + nlbatch.IFINFO.pack(
                    0, 0, FakeBatch.existing[name], 0, 0)
                replies[(len(FakeBatch.sends) - 1) * 1000 + i] = reply
        self.items = []
        return replies


def test_a_batched_block_is_bridges_then_one_lookup_then_the_rest(monkeypatch):
    monkeypatch.setattr(kernel, "Batch", FakeBatch)
    offloaded = []
    monkeypatch.setattr(kernel.Links, "tx_checksum_off",
                        lambda self, *names: offloaded.extend(names) if self._queue is None else self._offload.extend(names))
    FakeBatch.sends, FakeBatch.existing = [], {"qbr1": 11, "qbr2": 12}
    links = kernel.Links("nlab.t.node")
    with links.batched():
        for i in (1, 2):
            links.bridge(f"qbr{i}", mtu=1450, up=True)
            links.veth(f"tap{i}", "eth0", master=f"qbr{i}", up=True)
            links.tx_checksum_off(f"tap{i}")
            links.up(f"qvo{i}")
        assert FakeBatch.sends == [] and offloaded == []       # nothing sent inside the block
    assert FakeBatch.sends == [["creating bridge qbr1", "creating bridge qbr2"],
                               ["finding interface qbr1", "finding interface qbr2"],
                               ["creating veth tap1 <-> eth0", "setting qvo1 up",
                                "creating veth tap2 <-> eth0", "setting qvo2 up"]]
    assert offloaded == ["tap1", "tap2"]                        # once the devices exist


def test_a_device_that_is_not_there_is_named(monkeypatch):
    monkeypatch.setattr(kernel, "Batch", FakeBatch)
    FakeBatch.sends, FakeBatch.existing = [], {}
    links = kernel.Links("nlab.t.node")
    with pytest.raises(kernel.KernelError, match="no interface eth9 in netns nlab.t.node"):
        links.add_address("eth9", "10.0.0.2", 24)


class FakeSocket:
    """A netlink socket that ACKs every request of each sendto (error -17 for seqs in fail)."""

    def __init__(self, fail=()):
        self.sent, self.pending, self.fail = [], [], set(fail)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def sendto(self, data, addr):
        off, seqs = 0, []
        while off < len(data):
            length, _k, _f, seq, _p = HEADER.unpack_from(data, off)
            seqs.append(seq)
            off += length
        self.sent.append(len(seqs))
        for seq in seqs:
            body = struct.pack("=i", -17 if seq in self.fail else 0) + HEADER.pack(16, 16, 0, seq, 0)
            self.pending.append(HEADER.pack(HEADER.size + len(body), nlbatch.NLMSG_ERROR, 0, seq, 0) + body)

    def recv(self, size):
        out, self.pending = b"".join(self.pending), []
        return out


def test_a_big_batch_goes_in_chunks_whose_acks_fit_the_socket(monkeypatch):
    sock = FakeSocket()
    monkeypatch.setattr(nlbatch, "_socket", lambda: sock)
    batch = nlbatch.Batch("nlab.x")
    for i in range(500):
        batch.add(f"bridge {i}", kernel._bridge(ifname=f"qbr{i}", mtu=None, up=True))
    batch.send()
    assert sum(sock.sent) == 500 and max(sock.sent) == nlbatch.CHUNK


def test_a_failed_request_is_named(monkeypatch):
    batch = nlbatch.Batch("nlab.x")
    seqs = [batch.add(f"creating bridge qbr{i}", kernel._bridge(ifname=f"qbr{i}", mtu=None, up=True)) for i in range(3)]
    monkeypatch.setattr(nlbatch, "_socket", lambda: FakeSocket(fail={seqs[1]}))
    with pytest.raises(nlbatch.KernelError, match=r"creating bridge qbr1 in netns nlab.x: File exists \(errno 17\)"):
        batch.send()
