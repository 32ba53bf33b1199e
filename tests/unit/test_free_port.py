"""free_port: the loopback ports the dev control plane and the tests hand to processes
that bind them later. A port from the kernel's ephemeral range can be taken in that
gap by any outgoing connection, so none is ever handed out from it."""

import socket

from ray_operator_dev.devcluster import controlplane
from ray_operator_dev.devcluster.controlplane import free_port


def test_ports_are_bindable_distinct_and_outside_the_ephemeral_range():
    low, high = controlplane._ephemeral_range()
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert not [p for p in ports if low <= p <= high]
    assert all(p in controlplane.PORT_RANGE for p in ports)
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[-1]))  # still free: nothing was left bound


def test_a_port_something_listens_on_is_skipped(monkeypatch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        # Only the taken port and one free one are candidates.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]
        monkeypatch.setattr(controlplane, "PORT_RANGE", [taken, free])
        monkeypatch.setattr(controlplane, "_ephemeral_range", lambda: (0, -1))
        monkeypatch.setattr(controlplane, "_handed_out", set())
        assert free_port() == free
