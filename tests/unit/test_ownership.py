"""Ownership is exact: a process is a lab's when an argument IS a path in the lab's directory
(itself, --option=path, unix:/punix: socket), never when the path merely occurs in it."""

from __future__ import annotations

import pytest

from lab.runtime.processes import names_path

D = "/run/neutron-lab/lab/nodes/compute1"


@pytest.mark.parametrize("args", [
    [f"{D}/conf.db"], [f"--pidfile={D}/ovsdb-server.pid"], [f"--remote=punix:{D}/db.sock"],
    [f"unix:{D}/db.sock"], [D], ["--detach", f"--log-file={D}/x.log"],
])
def test_names_the_directory(args):
    assert names_path(args, D)
    assert names_path(args, D + "/")


@pytest.mark.parametrize("args", [
    ["/run/neutron-lab/lab/nodes/compute10/conf.db"],      # compute1 is no prefix of compute10
    ["/run/neutron-lab/lab1/nodes/compute1/conf.db"],      # nor lab of lab1
    [f"/tmp{D}/conf.db"],                                  # nor somewhere inside another path
    [f"--pidfile=/tmp{D}/x.pid"], [f"less {D}/x.log"], [], ["--detach"],
])
def test_does_not_name_the_directory(args):
    assert not names_path(args, D)
