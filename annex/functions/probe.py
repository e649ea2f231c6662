"""Collector reachability probe: can AWS reach the pool's collector at all?

The most common way a first burst of cloud instances wastes money is a pool collector that the cloud
cannot reach: the instances boot, fail to join, sit idle and are billed. This AWS Lambda function
(administrator-owned, deployed from inline code on the python3.12 runtime, so one file and the standard
library only, plus boto3 to write its answer) answers one question before any instance is launched: from
AWS's network, does a TCP connection to the collector's host and port complete?

It runs on a schedule (and when an administrator's check-setup asks), for the collectors the set-up
recorded, and writes its answers to an SSM parameter every user reads; no end user invokes it, so nobody
can aim it elsewhere or use it to take the account's Lambda concurrency. `check` probes one target
(``{"host": "cm.example.org", "port": 9618, "timeout": 5}``): it resolves the host, tries
each address in order until one accepts the TCP handshake, closes that connection at once and reports
which address answered and how long it took, or why none did (``dns``, ``refused``, ``timeout``,
``unreachable`` or ``other``, with the operating system's error text).

What it never does:

* it never sends a byte: the connection is closed as soon as the handshake completes, so it speaks no
  protocol, authenticates to nothing and cannot follow redirects (there are none at the TCP level);
* it never connects to an address that is not public (loopback, link-local such as the instance metadata
  service at 169.254.169.254 or fe80::/10, private ranges, multicast, unspecified, reserved) unless the
  event says ``"allow_private": true``. The check is made on every address the name resolves to, not
  only on a literal, and the connection is made to the checked address itself (the name is not
  resolved again), so a name that points at an internal endpoint is refused too;
* it never retries, and its total time (resolution included) is bounded by the timeout (1 to 10 s).

Its limits: a completed handshake proves that the collector's port is reachable from AWS Lambda's network
in the region where the function runs. It does not prove reachability from inside the annex's VPC and
security group (the security group's egress rules are checked separately), nor that a firewall in front
of the collector treats the instances' public addresses as it treats Lambda's, nor that whatever
listens on the port is an HTCondor collector.

Each invocation prints one JSON line (host, port, ok, error, seconds) for CloudWatch Logs.
"""

import errno
import ipaddress
import json
import math
import os
import re
import socket
import threading
import time

DEFAULT_TIMEOUT = 5.0
MIN_TIMEOUT = 1.0
MAX_TIMEOUT = 10.0
SCHEDULED_TIMEOUT = 3.0  # per collector, on the schedule: a run stays short whatever the network does
MAX_HOST = 253  # the longest DNS name, in its usual dotted text form

# One DNS label: letters, digits and inner hyphens, 1 to 63 characters (RFC 1035 / RFC 1123 host names).
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_UNREACHABLE = frozenset(
    getattr(errno, name) for name in ("ENETUNREACH", "EHOSTUNREACH", "ENETDOWN", "EHOSTDOWN") if hasattr(errno, name)
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # IPv4 addresses embedded in IPv6 by NAT64 gateways


class BadRequest(Exception):
    """The request is refused before (or instead of) any connection."""


class Failed(Exception):
    """The name did not resolve; `error` is one of the documented kinds ("dns")."""

    def __init__(self, error, detail):
        super().__init__(detail)
        self.error = error
        self.detail = detail


def handler(event=None, context=None):
    """The Lambda entry point, fired on a schedule (and by an administrator's check-setup): probe each
    collector the set-up recorded (environment COLLECTORS, "host:port,..."), with a short timeout, and
    write the answers to the SSM parameter every user reads (ANSWER_PARAMETER). The event is not read: no
    caller chooses what is probed or how long it takes."""
    answers = {}
    for target in [t for t in os.environ.get("COLLECTORS", "").split(",") if t.strip()]:
        host, _, port = target.strip().rpartition(":")
        answers[target.strip()] = check({"host": host.strip("[]"), "port": int(port) if port.isdigit() else 0,
                                         "timeout": SCHEDULED_TIMEOUT})  # fmt: skip
    record = {"checked": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "collectors": answers}
    if os.environ.get("ANSWER_PARAMETER"):
        import boto3  # only in Lambda: check() needs nothing but the standard library

        boto3.client("ssm", region_name=os.environ.get("ANNEX_REGION") or None).put_parameter(
            Name=os.environ["ANSWER_PARAMETER"], Value=json.dumps(record, sort_keys=True), Type="String", Overwrite=True
        )
    return record


def check(event):
    """One target: validate `event`, probe once, log one JSON line, return the report."""
    started = time.monotonic()
    try:
        host, port, timeout, allow_private = parse_event(event)
        result = probe(host, port, timeout, allow_private, started=started)
    except BadRequest as refusal:
        result = {"ok": False, "error": "bad-request", "detail": str(refusal)}
    except Exception as exc:  # a bug here must still produce a report and a log line
        result = {"ok": False, "error": "other", "detail": f"{type(exc).__name__}: {exc}"}
    seconds = round(time.monotonic() - started, 3)
    if result.get("error") != "bad-request":
        result["seconds"] = seconds
    log_line(event, result, seconds)
    return result


def parse_event(event):
    """(host, port, timeout, allow_private) from the event, or BadRequest. Touches no network."""
    if not isinstance(event, dict):
        raise BadRequest("the event must be a JSON object")
    host = event.get("host")
    if not isinstance(host, str) or not host:
        raise BadRequest("host must be a non-empty string")
    if len(host) > MAX_HOST:
        raise BadRequest(f"host is {len(host)} characters long; a DNS name has at most {MAX_HOST}")
    if not host.isascii() or not host.isprintable() or any(c.isspace() for c in host):
        raise BadRequest(f"host {host!r} has spaces, control or non-ASCII characters (give an IDN in its xn-- form)")
    if ip_literal(host) is None and not is_dns_name(host):
        raise BadRequest(
            f"host {host!r} is neither a DNS name nor an IPv4/IPv6 address (no scheme, path, port or spaces)"
        )
    port = event.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise BadRequest(f"port must be an integer from 1 to 65535, not {port!r}")
    timeout = event.get("timeout")
    if timeout is None:
        timeout = DEFAULT_TIMEOUT
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or math.isnan(timeout):
        raise BadRequest(f"timeout must be a number of seconds, not {timeout!r}")
    timeout = min(max(float(timeout), MIN_TIMEOUT), MAX_TIMEOUT)
    allow_private = event.get("allow_private", False)
    if not isinstance(allow_private, bool):
        raise BadRequest(f"allow_private must be true or false, not {allow_private!r}")
    return host, port, timeout, allow_private


def ip_literal(host):
    """The address if `host` is an IPv4 or IPv6 literal (strict forms only), else None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def is_dns_name(host):
    """True for a syntactically valid DNS host name (ASCII; an IDN must be given in its xn-- form).

    A name whose last label is all digits is refused: it is no name, and the C resolver would read
    forms such as "127.1" as an IPv4 address."""
    name = host[:-1] if host.endswith(".") else host
    if not name or len(name) > MAX_HOST:
        return False
    labels = name.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        return False
    return not labels[-1].isdigit()


def not_public(address):
    """Why `address` (an ipaddress object) is not a public unicast address, or None if it is."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            reason = not_public(embedded)
            if reason:
                return f"{reason} (embedded IPv4 {embedded})"
    for attribute, reason in (
        ("is_unspecified", "unspecified"),
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_private", "private"),
        ("is_reserved", "reserved"),
    ):
        if getattr(address, attribute):
            return reason
    if not address.is_global:
        return "not globally routable"
    return None


def resolve(host, port, deadline):
    """[(family, sockaddr)] for TCP to host:port, in the resolver's order, without duplicates.

    A name is resolved in a helper thread so that a resolver that never answers cannot hold the probe
    past its deadline."""
    numeric = ip_literal(host) is not None
    box = {}

    def work():
        try:
            box["infos"] = socket.getaddrinfo(
                host,
                port,
                socket.AF_UNSPEC,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                socket.AI_NUMERICHOST if numeric else 0,
            )
        except Exception as exc:  # handed to the caller's thread
            box["error"] = exc

    if numeric:
        work()
    else:
        worker = threading.Thread(target=work, name="probe-resolve", daemon=True)
        worker.start()
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            raise Failed("dns", f"no answer from the resolver for {host} within the timeout")
    if "error" in box:
        exc = box["error"]
        detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise Failed("dns", detail)
    found, seen = [], set()
    for family, _kind, _proto, _canonical, sockaddr in box.get("infos", []):
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        if (family, sockaddr[0]) not in seen:
            seen.add((family, sockaddr[0]))
            found.append((family, sockaddr))
    if not found:
        raise Failed("dns", f"{host} has no IPv4 or IPv6 address")
    return found


def classify(exc):
    """(error kind, errno text) for an exception raised by connect()."""
    if isinstance(exc, (TimeoutError, socket.timeout)) and not getattr(exc, "errno", None):
        return "timeout", "timed out"
    number = getattr(exc, "errno", None)
    detail = os.strerror(number) if number else (str(exc) or type(exc).__name__)
    if isinstance(exc, ConnectionRefusedError) or number == errno.ECONNREFUSED:
        return "refused", detail
    if isinstance(exc, TimeoutError) or number == errno.ETIMEDOUT:
        return "timeout", detail
    if number in _UNREACHABLE:
        return "unreachable", detail
    return "other", detail


def refuse_non_public(host, addresses):
    """BadRequest naming the first address that is not public, if any."""
    for address in addresses:
        reason = not_public(ipaddress.ip_address(address))
        if reason:
            shown = address if address == host else f"{host} resolves to {address}, which"
            raise BadRequest(
                f"{shown} is {reason}; only public addresses are probed unless the event sets allow_private"
            )


def probe(host, port, timeout=DEFAULT_TIMEOUT, allow_private=False, started=None):
    """Connect once to host:port (first address that answers), close at once; return the report.

    Raises BadRequest if an address is not public and allow_private is false (nothing is connected)."""
    started = time.monotonic() if started is None else started
    deadline = started + timeout
    report = {"host": host, "port": port}
    literal = ip_literal(host)
    if literal is not None and not allow_private:
        refuse_non_public(host, [str(literal)])  # before even a numeric getaddrinfo
    try:
        found = resolve(host, port, deadline)
    except Failed as failure:
        return report | {
            "ok": False,
            "error": failure.error,
            "detail": failure.detail,
            "addresses": [],
        }
    addresses = [sockaddr[0] for _family, sockaddr in found]
    if not allow_private:
        refuse_non_public(host, addresses)
    attempts = []
    for family, sockaddr in found:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.settimeout(remaining)
            sock.connect(sockaddr)
        except OSError as exc:
            error, detail = classify(exc)
            attempts.append({"address": sockaddr[0], "error": error, "detail": detail})
            continue
        finally:
            sock.close()  # at once, whether it connected or not: nothing is ever sent
        return report | {"ok": True, "address": sockaddr[0]}
    if len(attempts) < len(found):  # the timeout ran out before every address was tried
        untried = len(found) - len(attempts)
        error, detail = (
            "timeout",
            f"timed out after {timeout:g} s with {untried} address(es) not tried",
        )
        if attempts:
            detail += f"; last error: {attempts[-1]['detail']}"
    else:
        error, detail = attempts[-1]["error"], attempts[-1]["detail"]
    return report | {
        "ok": False,
        "error": error,
        "detail": detail,
        "addresses": addresses,
        "attempts": attempts,
    }


def log_line(event, result, seconds):
    """One JSON line per invocation: host, port, ok, error, seconds (nothing else from the event)."""
    host = event.get("host") if isinstance(event, dict) else None
    port = event.get("port") if isinstance(event, dict) else None
    line = {
        "host": host[:MAX_HOST] if isinstance(host, str) else None,
        "port": port if isinstance(port, int) and not isinstance(port, bool) else None,
        "ok": result["ok"],
        "error": result.get("error"),
        "seconds": seconds,
    }
    print(json.dumps(line, sort_keys=True), flush=True)
