"""Connection guards for the servers' uvicorn: read deadlines for a request's headers and body, a
cap on open connections, and one log line (no traceback) per dropped connection.

uvicorn has a keep-alive time-out but none for reading a request: a client that never finishes
its headers, or trickles its body a byte at a time, holds a connection forever (slowloris), and
``limit_concurrency`` only answers 503 to requests that did arrive. :class:`ConnectionGuard`,
mixed into uvicorn's h11 protocol (:func:`guarded_protocol`), adds, per :class:`ConnectionLimits`:

* **headers**: a request's headers must be complete ``header_timeout_s`` after its first byte
  (or after the connection opened); else the connection gets ``408`` and is closed;
* **body**: the body must arrive within ``body_timeout_s`` plus one second per ``min_body_rate``
  bytes received (Apache ``mod_reqtimeout``'s rule: a client sending at least that fast is never
  cut off, a trickle is); else the connection is closed and the request ends as a disconnect;
* **connections**: beyond ``max_connections`` open ones, a new connection gets ``503`` and is
  closed at once (one log line per ``LOG_EVERY_S`` seconds, with the count).

:func:`uvicorn_config` builds the ``uvicorn.Config`` that uses it (``sparkasr serve``, ``sparkasr
demo`` and the tests' servers).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional

log = logging.getLogger(__name__)

LOG_EVERY_S = 10.0  # refused connections are logged at most this often


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_s: float = 10.0
    body_timeout_s: float = 20.0
    min_body_rate: int = 8192  # bytes per second that extend the body's deadline by one second
    max_connections: int = 256

    def __post_init__(self):
        if self.header_timeout_s <= 0 or self.body_timeout_s <= 0 or self.min_body_rate <= 0:
            raise ValueError("header_timeout_s, body_timeout_s and min_body_rate must be > 0")
        if self.max_connections < 1:
            raise ValueError("max_connections must be >= 1")


def _response(status: int, reason: str) -> bytes:
    return f"HTTP/1.1 {status} {reason}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n".encode("ascii")


class ConnectionGuard:
    """The read deadlines and the connection cap of :attr:`limits`, mixed into uvicorn's h11
    protocol by :func:`guarded_protocol` (this module imports neither uvicorn nor h11, so that
    the command line can show the defaults without the serve extra)."""

    limits = ConnectionLimits()
    _refused = 0  # connections refused since the last log line (class-wide)
    _refused_logged = 0.0

    def connection_made(self, transport) -> None:
        self._timer: Optional[Any] = None
        self._phase: Optional[str] = None  # "headers" | "body" while a deadline runs
        self._body_started = 0.0
        self._body_bytes = 0
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse()
            return
        self._arm_headers()

    def _refuse(self) -> None:
        cls = ConnectionGuard
        cls._refused += 1
        now = time.monotonic()
        if now - cls._refused_logged >= LOG_EVERY_S:
            log.warning(
                "refused %d connection(s): %d open, the limit is %d",
                cls._refused,
                len(self.connections) - 1,
                self.limits.max_connections,
            )
            cls._refused, cls._refused_logged = 0, now
        self.connections.discard(self)
        self.transport.write(_response(503, "Service Unavailable"))
        self.transport.close()

    # -- deadlines ----------------------------------------------------------------------------

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._phase = None, None

    def _arm_headers(self) -> None:
        self._cancel()
        self._phase = "headers"
        self._timer = self.loop.call_later(self.limits.header_timeout_s, self._expired)

    def _arm_body(self, received: int) -> None:
        if self._phase != "body":
            self._cancel()
            self._phase, self._body_started, self._body_bytes = "body", self.loop.time(), 0
        self._body_bytes += received
        if self._timer is not None:
            self._timer.cancel()
        deadline = self._body_started + self.limits.body_timeout_s + self._body_bytes / self.limits.min_body_rate
        self._timer = self.loop.call_at(deadline, self._expired)

    def _expired(self) -> None:
        phase, self._timer, self._phase = self._phase, None, None
        if self.transport.is_closing():
            return
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "client"
        if phase == "headers":
            log.info("%s: closed, request headers not complete within %g s", client, self.limits.header_timeout_s)
            if self.cycle is None or not self.cycle.response_started:
                self.transport.write(_response(408, "Request Timeout"))
        else:
            log.info(
                "%s: closed, request body too slow (%d bytes in %.1f s)",
                client,
                self._body_bytes,
                self.loop.time() - self._body_started,
            )
        self.transport.close()

    def _follow(self, received: int) -> None:
        """After data arrived: the deadline of what the request still has to send."""
        import h11

        if self.transport.is_closing():
            self._cancel()
            return
        state = self.conn.their_state
        if state is h11.IDLE:  # the next request's headers (not complete yet)
            if self._phase != "headers":
                self._arm_headers()
        elif state is h11.SEND_BODY:
            self._arm_body(received if self._phase == "body" else 0)
        else:  # the request is in, or the connection switched protocol or failed
            self._cancel()

    # -- uvicorn's protocol ---------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow(len(data))

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow(0)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._cancel()
        super().connection_lost(exc)


def guarded_protocol(limits: ConnectionLimits) -> type:
    """uvicorn's h11 protocol with :class:`ConnectionGuard` and ``limits``."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    return type("GuardedH11Protocol", (ConnectionGuard, H11Protocol), {"limits": limits})


def uvicorn_config(app, host: str, port: int, limits: ConnectionLimits = ConnectionLimits(), **kwargs: Any):
    """``uvicorn.Config`` for ``app`` served with the guarded protocol and ``limits``."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, http=guarded_protocol(limits), **kwargs)


def command_log_config(level: str) -> Dict[str, Any]:
    """uvicorn's logging configuration for a server command (``sparkasr serve``/``demo``): the
    server's own messages (``sparkasr.*`` loggers) are printed as uvicorn's are, at ``level``.
    Only for a process the command owns: an application embedding the server keeps its own."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["sparkasr"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config
