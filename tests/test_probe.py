"""The collector reachability probe (annex/functions/probe.py), with real sockets on 127.0.0.1."""

from __future__ import annotations

import ast
import json
import socket
import sys
import time
from pathlib import Path

import pytest

from annex.functions import probe

PROBE_FILE = Path(probe.__file__)


@pytest.fixture
def listener():
    """A listening TCP socket on loopback; yields its port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def closed_port():
    """A loopback port that nothing listens on (bound once, then closed)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
def full_backlog():
    """A listening socket whose accept queue is full, so a further connect() hangs until it times out.

    Linux keeps backlog+1 completed connections; with listen(0) one filler connection fills the queue and
    further SYNs are dropped."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(3):  # fill the queue; stop at the first connect that would itself hang
        filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        filler.settimeout(0.2)
        try:
            filler.connect(("127.0.0.1", port))
        except OSError:
            filler.close()
            break
        fillers.append(filler)
    else:
        pytest.skip("the kernel accepted every connection; cannot make connect() hang here")
    yield port
    for filler in fillers:
        filler.close()
    server.close()


@pytest.fixture
def no_sockets(monkeypatch):
    """Fail the test if anything tries to open a socket or resolve a name."""

    def forbidden(*args, **kwargs):
        raise AssertionError(f"network activity during a refused request: {args!r}")

    monkeypatch.setattr(socket, "socket", forbidden)
    monkeypatch.setattr(socket, "create_connection", forbidden)
    monkeypatch.setattr(socket, "getaddrinfo", forbidden)


@pytest.fixture
def no_connect(monkeypatch):
    """Fail the test if anything opens a socket (name resolution stays allowed)."""

    def forbidden(*args, **kwargs):
        raise AssertionError(f"a socket was opened: {args!r}")

    monkeypatch.setattr(socket, "socket", forbidden)
    monkeypatch.setattr(socket, "create_connection", forbidden)


def local(port, **extra):
    return {"host": "127.0.0.1", "port": port, "allow_private": True} | extra


# --- reachability --------------------------------------------------------------------------------------


def test_listening_port_is_ok(listener):
    result = probe.check(local(listener))
    assert result["ok"] is True
    assert result["address"] == "127.0.0.1"
    assert result["host"] == "127.0.0.1" and result["port"] == listener
    assert 0 <= result["seconds"] < 1
    assert "error" not in result


def test_name_is_resolved_and_connected(listener):
    result = probe.check({"host": "localhost", "port": listener, "allow_private": True})
    assert result["ok"] is True
    assert result["address"] in ("127.0.0.1", "::1")


def test_nothing_is_sent(listener):
    """The probe closes at once: the server sees a connection that ends without a byte."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        assert probe.check(local(port))["ok"] is True
        conn, _ = server.accept()
        conn.settimeout(1)
        assert conn.recv(1024) == b""  # EOF, no data
        conn.close()
    finally:
        server.close()


def test_closed_port_is_refused_quickly(closed_port):
    started = time.monotonic()
    result = probe.check(local(closed_port, timeout=5))
    assert time.monotonic() - started < 1
    assert result["ok"] is False
    assert result["error"] == "refused"
    assert result["detail"]  # the errno text, e.g. "Connection refused"
    assert result["addresses"] == ["127.0.0.1"]
    assert result["host"] == "127.0.0.1" and result["port"] == closed_port


def test_unresolvable_name_is_dns():
    started = time.monotonic()
    result = probe.check({"host": "nonexistent.invalid", "port": 9618, "timeout": 1})
    assert time.monotonic() - started < 2
    assert result["ok"] is False
    assert result["error"] == "dns"
    assert result["detail"]
    assert result["addresses"] == []


def test_resolver_that_never_answers_is_bounded_by_the_timeout(monkeypatch):
    def slow(*args, **kwargs):
        time.sleep(3)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    started = time.monotonic()
    result = probe.check({"host": "cm.example.org", "port": 9618, "timeout": 1})
    assert time.monotonic() - started < 1.5
    assert result["error"] == "dns"


def test_full_backlog_times_out_within_the_timeout(full_backlog):
    started = time.monotonic()
    result = probe.check(local(full_backlog, timeout=0.1))  # clamped up to 1 s
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 2
    assert result["ok"] is False
    assert result["error"] == "timeout"
    assert result["addresses"] == ["127.0.0.1"]


def test_addresses_are_tried_in_order_until_one_connects(monkeypatch, closed_port, listener):
    """First address refuses, second listens: the probe reports the second."""
    infos = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", closed_port)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.2", listener)),
    ]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: infos)
    connected = []
    real_socket = socket.socket

    class Recording(real_socket):
        def connect(self, address):
            connected.append(address)
            # every address is really on loopback; map the fake second address to the listener
            return super().connect(("127.0.0.1", address[1]))

    monkeypatch.setattr(socket, "socket", Recording)
    result = probe.check({"host": "cm.example.org", "port": 9618, "allow_private": True})
    assert result["ok"] is True and result["address"] == "127.0.0.2"
    assert connected == [("127.0.0.1", closed_port), ("127.0.0.2", listener)]


def test_all_addresses_failing_reports_each(monkeypatch, closed_port):
    infos = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", closed_port))] * 2  # duplicates collapse
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: infos)
    result = probe.check({"host": "cm.example.org", "port": closed_port, "allow_private": True})
    assert result["error"] == "refused"
    assert result["addresses"] == ["127.0.0.1"]
    assert [a["error"] for a in result["attempts"]] == ["refused"]


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "refused"),
        (TimeoutError("timed out"), "timeout"),
        (OSError(101, "Network is unreachable"), "unreachable"),
        (OSError(113, "No route to host"), "unreachable"),
        (OSError(13, "Permission denied"), "other"),
    ],
)
def test_errors_are_classified(exc, kind):
    error, detail = probe.classify(exc)
    assert error == kind
    assert detail


# --- bad requests: refused before any network activity ---------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        {"host": "cm.example.org", "port": 0},
        {"host": "cm.example.org", "port": 70000},
        {"host": "cm.example.org", "port": "abc"},
        {"host": "cm.example.org", "port": "9618"},
        {"host": "cm.example.org", "port": True},
        {"host": "cm.example.org", "port": 9618.0},
        {"host": "cm.example.org"},
        {"host": "cm example.org", "port": 9618},
        {"host": "http://x", "port": 9618},
        {"host": "cm.example.org:9618", "port": 9618},
        {"host": "cm.example.org/path", "port": 9618},
        {"host": "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 62, "port": 9618},  # 254 characters
        {"host": "", "port": 9618},
        {"host": None, "port": 9618},
        {"host": "-cm.example.org", "port": 9618},
        {"host": "cm..example.org", "port": 9618},
        {"host": "x" * 64 + ".org", "port": 9618},  # a label longer than 63
        {"host": "127.1", "port": 9618},  # the resolver would read it as 127.0.0.1
        {"host": "[::1]", "port": 9618},
        {"host": "cm.example.org\n", "port": 9618},
        {"host": "bücher.example", "port": 9618},
        {"host": "cm.example.org", "port": 9618, "timeout": "5"},
        {"host": "cm.example.org", "port": 9618, "timeout": float("nan")},
        {"host": "cm.example.org", "port": 9618, "allow_private": "yes"},
        "cm.example.org:9618",
        None,
    ],
)
def test_bad_requests_touch_no_network(no_sockets, event, capsys):
    result = probe.check(event)
    assert result["ok"] is False
    assert result["error"] == "bad-request"
    assert result["detail"]
    line = json.loads(capsys.readouterr().out.strip())
    assert line["error"] == "bad-request" and line["ok"] is False


def test_the_longest_name_is_accepted_by_validation():
    name = "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 61  # 253 characters
    assert len(name) == 253 and probe.is_dns_name(name)
    assert probe.parse_event({"host": name, "port": 9618})[0] == name
    with pytest.raises(probe.BadRequest):  # the limit is on the text as given: 254 with a root dot
        probe.parse_event({"host": name + ".", "port": 9618})


def test_timeout_is_clamped_and_defaulted():
    assert probe.parse_event({"host": "a.org", "port": 1})[2] == 5
    assert probe.parse_event({"host": "a.org", "port": 1, "timeout": 0})[2] == 1
    assert probe.parse_event({"host": "a.org", "port": 1, "timeout": -3})[2] == 1
    assert probe.parse_event({"host": "a.org", "port": 1, "timeout": 60})[2] == 10
    assert probe.parse_event({"host": "a.org", "port": 1, "timeout": 2.5})[2] == 2.5
    assert probe.parse_event({"host": "a.org", "port": 1, "timeout": float("inf")})[2] == 10


def test_valid_hosts_pass_validation():
    for host in ("cm.example.org", "cm.example.org.", "CM-1.Example.ORG", "localhost", "xn--bcher-kva.example",
                 "192.0.2.10", "2001:db8::1", "::1"):
        assert probe.parse_event({"host": host, "port": 9618})[0] == host


# --- non-public addresses --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "169.254.169.254",  # the instance metadata service
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "0.0.0.0",
        "224.0.0.1",
        "100.64.0.1",  # shared address space (carrier-grade NAT)
        "::1",
        "::",
        "fe80::1",
        "fd00:ec2::254",  # the IPv6 instance metadata service
        "ff02::1",
        "::ffff:169.254.169.254",  # IPv4-mapped
        "64:ff9b::a9fe:a9fe",  # NAT64 form of 169.254.169.254
    ],
)
def test_non_public_literals_are_refused(no_sockets, host):
    result = probe.check({"host": host, "port": 80})
    assert result == {"ok": False, "error": "bad-request", "detail": result["detail"]}
    assert "allow_private" in result["detail"]


def test_names_are_checked_after_resolution(no_connect):
    """localhost is a valid name; what it resolves to (loopback) is refused, and nothing connects."""
    result = probe.check({"host": "localhost", "port": 80})
    assert result["error"] == "bad-request"
    assert "loopback" in result["detail"]


def test_a_name_with_any_private_address_is_refused(monkeypatch, no_connect):
    infos = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("198.51.100.7", 80)),  # documentation range: not global
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 80)),
    ]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: infos)
    result = probe.check({"host": "rebind.example.org", "port": 80})
    assert result["error"] == "bad-request"


def test_public_addresses_are_public():
    import ipaddress

    for address in ("8.8.8.8", "52.94.76.1", "2600:1f18::1"):
        assert probe.not_public(ipaddress.ip_address(address)) is None


def test_allow_private_lets_loopback_through(listener):
    assert probe.check({"host": "127.0.0.1", "port": listener, "allow_private": True})["ok"] is True
    assert probe.check({"host": "127.0.0.1", "port": listener})["error"] == "bad-request"


# --- the log line ----------------------------------------------------------------------------------------


def test_one_json_log_line_per_invocation(listener, closed_port, capsys):
    probe.check(local(listener))
    probe.check(local(closed_port))
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    ok, refused = (json.loads(line) for line in lines)
    assert ok == {"host": "127.0.0.1", "port": listener, "ok": True, "error": None, "seconds": ok["seconds"]}
    assert refused["ok"] is False and refused["error"] == "refused" and refused["port"] == closed_port
    assert isinstance(refused["seconds"], float)


# --- the file itself -------------------------------------------------------------------------------------


def test_imports_only_the_standard_library_but_boto3_where_it_writes_its_answer():
    """The probe itself needs nothing but the standard library; boto3 (which Lambda's runtime has) is
    imported only inside the handler, to write the answer users read."""
    tree = ast.parse(PROBE_FILE.read_text())
    top, inside = set(), set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import: the function is deployed as one file"
            top.add(node.module.split(".")[0])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and node not in tree.body:
            inside.update(alias.name.split(".")[0] for alias in node.names)
    assert top and top <= set(sys.stdlib_module_names), top - set(sys.stdlib_module_names)
    assert inside - set(sys.stdlib_module_names) == {"boto3"}


def test_the_docstring_states_purpose_and_limits():
    doc = ast.get_docstring(ast.parse(PROBE_FILE.read_text()))
    for phrase in ("never sends", "redirect", "security group", "Lambda"):
        assert phrase in doc
