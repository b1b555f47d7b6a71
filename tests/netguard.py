"""A pytest plugin (loaded by conftest.py): no test reaches past the loopback interface.

Any connection to, datagram for, or name lookup of a non-loopback address raises ``NetworkBlocked`` before a
packet leaves the machine, and the test that tried it fails even when the code under test swallows the
exception (``except Exception``, "offline: from scratch"): attempts are recorded and the test's phase is
failed afterwards. 127.0.0.0/8, ::1, ``localhost`` and Unix sockets stay allowed, so tests can run real servers
on 127.0.0.1.

Child processes forked by a test inherit the guard; processes started with a fresh interpreter do not.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest

#: Attempts made during the current test phase: (what, address).
attempts: list[tuple[str, str]] = []

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


class NetworkBlocked(RuntimeError):
    """A test tried to reach a non-loopback address. Deliberately not an OSError: code that treats OSError as
    "offline" must not hide the attempt."""


def is_loopback(host) -> bool:
    """Whether ``host`` (a name or a numeric address, as str or bytes) stays on this machine."""
    if host is None:
        return True  # getaddrinfo(None, port): the local wildcard / loopback
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]").split("%", 1)[0].lower()
    if host in _LOCAL_NAMES or host == "":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name other than localhost: resolving it already asks a DNS server
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _is_address(host) -> bool:
    try:
        ipaddress.ip_address(str(host.decode() if isinstance(host, bytes) else host).strip("[]").split("%", 1)[0])
        return True
    except ValueError:
        return False


def _lookup(host, port=None) -> None:
    """Resolving a numeric address sends nothing (connect is checked later); resolving a name asks a DNS server."""
    if host is not None and not _is_address(host):
        _check("look up", None, (host, port) if port is not None else (host,))


def _check(what: str, family, address) -> None:
    if family == getattr(socket, "AF_UNIX", object()) or not isinstance(address, tuple):
        return  # Unix sockets (a path) and other families carry no network traffic
    host = address[0]
    if not is_loopback(host):
        attempts.append((what, f"{host}:{address[1]}" if len(address) > 1 else str(host)))
        raise NetworkBlocked(f"tests may not reach the network: {what} {host!r} (only 127.0.0.1 / ::1 / localhost)")


_orig = {}


def install() -> None:
    """Patch the socket module (idempotent)."""
    if _orig:
        return
    _orig.update(connect=socket.socket.connect, connect_ex=socket.socket.connect_ex, sendto=socket.socket.sendto,
                 getaddrinfo=socket.getaddrinfo, gethostbyname=socket.gethostbyname,
                 gethostbyname_ex=socket.gethostbyname_ex)

    def connect(self, address):
        _check("connect to", self.family, address)
        return _orig["connect"](self, address)

    def connect_ex(self, address):
        _check("connect to", self.family, address)
        return _orig["connect_ex"](self, address)

    def sendto(self, data, *args):
        _check("send a datagram to", self.family, args[-1])
        return _orig["sendto"](self, data, *args)

    def getaddrinfo(host, *args, **kwargs):
        _lookup(host, args[0] if args else kwargs.get("port"))
        return _orig["getaddrinfo"](host, *args, **kwargs)

    def gethostbyname(host):
        _lookup(host)
        return _orig["gethostbyname"](host)

    def gethostbyname_ex(host):
        _lookup(host)
        return _orig["gethostbyname_ex"](host)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.socket.sendto = sendto
    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname
    socket.gethostbyname_ex = gethostbyname_ex


def uninstall() -> None:
    if not _orig:
        return
    for name in ("connect", "connect_ex", "sendto"):
        setattr(socket.socket, name, _orig[name])
    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex"):
        setattr(socket, name, _orig[name])
    _orig.clear()


def pytest_configure(config):
    install()


def pytest_unconfigure(config):
    uninstall()


def _guarded(phase: str):
    @pytest.hookimpl(wrapper=True)
    def hook(item):
        attempts.clear()
        try:
            return (yield)
        finally:
            tried, attempts[:] = list(attempts), []
            if tried:
                pytest.fail(f"network access during {phase}: " + "; ".join(f"{w} {a}" for w, a in tried),
                            pytrace=False)
    return hook


pytest_runtest_setup = _guarded("setup")
pytest_runtest_call = _guarded("the test")
pytest_runtest_teardown = _guarded("teardown")
