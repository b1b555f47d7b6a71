"""The socket guard (tests/netguard.py): a test that reaches past the loopback interface fails, even when the
code it runs swallows the error; servers on 127.0.0.1 keep working."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

import netguard


def test_guard_raises_before_any_packet_is_sent(monkeypatch):
    real = []
    monkeypatch.setitem(netguard._orig, "connect", lambda *a: real.append(a))  # the real connect, if reached
    t0 = time.perf_counter()
    try:
        with pytest.raises(netguard.NetworkBlocked, match="10.255.255.1"):
            socket.create_connection(("10.255.255.1", 80), timeout=5)
        with pytest.raises(netguard.NetworkBlocked, match="huggingface.co"):
            socket.getaddrinfo("huggingface.co", 443)  # a DNS query is traffic too
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with pytest.raises(netguard.NetworkBlocked):
            s.sendto(b"x", ("8.8.8.8", 53))
        s.close()
    finally:
        tried, netguard.attempts[:] = list(netguard.attempts), []  # this test expects its attempts
    assert real == [] and time.perf_counter() - t0 < 1.0  # refused at once, no timeout waited for
    assert [w for w, _ in tried] == ["connect to", "look up", "send a datagram to"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_servers_stay_reachable(host):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        srv = socket.create_server((host, 0), family=family)
    except OSError as exc:  # e.g. no IPv6 on this machine
        pytest.skip(f"cannot listen on {host}: {exc}")
    port = srv.getsockname()[1]
    t = threading.Thread(target=lambda: srv.accept()[0].sendall(b"pong"), daemon=True)
    t.start()
    with socket.create_connection((host, port), timeout=5) as c:
        assert c.recv(4) == b"pong"
    t.join(5)
    srv.close()
    assert netguard.attempts == []


@pytest.mark.parametrize("host, local", [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True),
                                         ("::ffff:127.0.0.1", True), ("localhost", True), (None, True),
                                         ("10.255.255.1", False), ("::ffff:10.0.0.1", False),
                                         ("example.org", False), ("0:0:0:0:0:0:0:2", False)])
def test_what_counts_as_loopback(host, local):
    assert netguard.is_loopback(host) is local


INNER = '''
import socket
import pytest

def test_swallows_a_connection():
    try:
        socket.create_connection(("10.255.255.1", 80), timeout=1)
    except Exception:
        pass  # "offline: carry on" - the guard must still fail this test

def test_swallows_a_lookup():
    try:
        socket.getaddrinfo("huggingface.co", 443)
    except Exception:
        pass

@pytest.fixture
def online():
    try:
        socket.create_connection(("10.255.255.1", 443), timeout=1)
    except Exception:
        pass

def test_connects_in_a_fixture(online):
    pass

def test_stays_local():
    srv = socket.create_server(("127.0.0.1", 0))
    with socket.create_connection(srv.getsockname(), timeout=5):
        pass
    srv.close()
'''


def test_a_test_that_tries_the_network_fails(pytester, monkeypatch):
    """The guard fails the tests that try, whatever they catch, and only those."""
    here = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", here + os.pathsep + os.environ.get("PYTHONPATH", ""))
    pytester.makepyfile(test_inner=INNER)
    res = pytester.runpytest_subprocess("-p", "netguard", "-p", "no:cacheprovider", "-q")
    res.assert_outcomes(passed=1, failed=2, errors=1)
    out = res.stdout.str()
    assert "network access during the test: connect to 10.255.255.1:80" in out
    assert "network access during the test: look up huggingface.co:443" in out
    assert "network access during setup: connect to 10.255.255.1:443" in out
