"""Before a launch writes anything: can the tracking server and the Ray cluster be reached?

Each connection attempt is one TCP connect bounded by a short timeout (``--connect-timeout``), so an
unreachable ``tracking.uri: http://...`` or ``--address HOST:PORT`` ends in one line within seconds
instead of hanging in a client's retry loop, and leaves no MLflow store, experiment or run behind.
A local SQLite or file store needs no connection. Ray's ``auto`` and ``local`` are resolved by Ray.
"""

from __future__ import annotations

import os
import socket
from typing import Any
from urllib.parse import urlsplit

from harness.spec import ray_address_problem

DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "mysql": 3306, "mssql": 1433}


class PreflightError(Exception):
    """A service the launch needs cannot be reached (one-line message)."""


def check_reachable(spec: Any, address: str | None, timeout: float) -> None:
    """Raise ``PreflightError`` unless the spec's tracking server and the Ray address that the run
    would use (``address``, else ``ray.address``, else ``RAY_ADDRESS``) accept a connection in time."""
    if not timeout > 0:
        raise PreflightError(f"--connect-timeout must be a positive number of seconds, got {timeout}")
    check_tracking(spec.tracking["uri"], timeout)
    ray_address = address or spec.ray.get("address") or os.environ.get("RAY_ADDRESS")
    if ray_address and ray_address not in ("auto", "local"):
        problem = ray_address_problem(ray_address)
        if problem:
            raise PreflightError(f"Ray address: {problem}")
        host, _, port = ray_address.removeprefix("ray://").rpartition(":")
        if not host:  # ray://HOST without a port: Ray client's default
            host, port = ray_address.removeprefix("ray://"), "10001"
        _connect(host.strip("[]"), int(port), timeout, f"the Ray cluster at {ray_address}")


def check_tracking(uri: str, timeout: float) -> None:
    """Raise ``PreflightError`` unless a tracking server (http, https, a database) accepts a connection in time."""
    scheme = uri.split(":", 1)[0].lower().split("+", 1)[0]
    if scheme in DEFAULT_PORTS:
        parts = urlsplit(uri)
        _connect(parts.hostname, parts.port or DEFAULT_PORTS[scheme], timeout, f"the tracking server of {uri}")


def _connect(host: str | None, port: int, timeout: float, what: str) -> None:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except socket.timeout:
        raise PreflightError(
            f"cannot reach {what}: no answer within {timeout:g} s (--connect-timeout); nothing was written"
        ) from None
    except OSError as exc:
        raise PreflightError(f"cannot reach {what}: {exc.strerror or exc}; nothing was written") from None
