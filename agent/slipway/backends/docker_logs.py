"""Following a container's log stream on Docker Engine, frame by frame.

docker-py's own helpers do not fit here: ``APIClient.logs(stream=True)`` reads each
frame with two ``response.raw.read`` calls and yields its payload without its source
(stdout or stderr), and ``frames_iter``/``demux_adaptor`` read a hijacked socket, not
the chunked HTTP body docker sends for ``/containers/<id>/logs``. Only per-source state
can join a line longer than 16 KiB that docker split into partial records while the
other source wrote in between, and one read per record is what made app logs cost
+9.4% of a core at 1,000 lines/s (BENCHMARKS.md, agent_overhead): so this module reads
the body itself, all that has arrived at once, lingering between reads of a busy stream.
Reading alone, one container writing ~940 lines/s costs 1.8% of a core through
``APIClient.logs(stream=True, follow=True)`` and 0.5% through this reader.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import select
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import docker
import docker.errors
import requests
import urllib3.exceptions

from ..errors import BackendError
from . import LogStream

log = logging.getLogger("slipway.backends")

_NS = 1_000_000_000
_READ_SIZE = 64 * 1024
_LINGER = 0.2  # s a busy stream's next read waits, for lines to gather
_DOCKER_ERRORS = (docker.errors.DockerException, requests.RequestException)
# What reading a stream that broke, or that another thread shut, raises.
_STREAM_ERRORS = (OSError, urllib3.exceptions.HTTPError, http.client.HTTPException, ValueError)


def _docker_since(ns: int) -> str:
    """Nanoseconds since the epoch as docker's ``since=`` (seconds with a fraction)."""
    return f"{ns // _NS}.{ns % _NS:09d}"


class _Body:
    """The body of docker's chunked log response, read straight from the connection's
    buffered reader: ``read`` returns all that has arrived, however many chunks it holds
    (http.client's ``read1`` stops at each chunk's end, and docker sends one chunk per
    log record: a read, a wakeup and a store write per line)."""

    def __init__(self, response: requests.Response) -> None:
        fp = response.raw._fp  # http.client's response: headers read, body not yet
        self._fp = fp.fp
        self._chunked = bool(fp.chunked)
        self._length = None if self._chunked else fp.length
        self._pending = bytearray()  # received, not decoded yet
        self._left = 0  # data bytes of the current chunk still to come
        self._crlf = False  # the CRLF after a chunk's data is due
        self._done = False

    def read(self) -> bytes:
        """Body bytes: blocks until some arrive; b"" at the end of the body. Each call
        empties the reader's buffer (``read1`` of at least its size returns all of it)."""
        while not self._done:
            want = _READ_SIZE if self._length is None else min(_READ_SIZE, self._length)
            raw = self._fp.read1(want) if want else b""
            if not raw:
                break
            if not self._chunked:
                if self._length is not None:
                    self._length -= len(raw)
                return raw
            self._pending += raw
            data = self._decode()
            if data:
                return data
        self._done = True
        return b""

    def _decode(self) -> bytes:
        pending, at, out = self._pending, 0, bytearray()
        while True:
            if self._left:
                take = min(self._left, len(pending) - at)
                out += pending[at : at + take]
                at += take
                self._left -= take
                if self._left:
                    break
                self._crlf = True
            if self._crlf:
                if len(pending) - at < 2:
                    break
                at += 2
                self._crlf = False
            end = pending.find(b"\r\n", at)
            if end < 0:
                if len(pending) - at > 256:
                    raise ValueError("not a chunked body: no chunk size line")
                break
            size = int(bytes(pending[at:end]).split(b";", 1)[0], 16)  # ValueError: broken
            at = end + 2
            if size == 0:
                self._done = True
                break
            self._left = size
        del pending[:at]
        return bytes(out)


class _Stream:
    """One open log stream: yields the ``(source, record)`` frames each read brought;
    ``interrupt`` ends it from another thread. After a read that has caught up (nothing
    more waiting on the socket), the next waits ``_LINGER`` s, so a chatty app's lines
    cost one read and one store write per interval instead of one each; a quiet app's
    first line is read at once, and a backlog is read without pauses."""

    def __init__(self, response: requests.Response, sock: Any, running: bool) -> None:
        self.running = running  # the container ran when attached (else the stream is all)
        self._response = response
        self._sock = getattr(sock, "_sock", sock)
        self._interrupted = threading.Event()
        self._poll: select.poll | None = select.poll()
        try:
            self._poll.register(self._sock, select.POLLIN)
        except (OSError, TypeError, ValueError, AttributeError):  # no file descriptor
            self._poll = None

    def _caught_up(self) -> bool:
        """Nothing more has arrived (read1 leaves nothing in the reader's buffer)."""
        if self._poll is None:
            return False  # cannot tell: never wait
        try:
            return not self._poll.poll(0)
        except (OSError, ValueError):
            return False

    def __iter__(self) -> Iterator[list[tuple[int, bytes]]]:
        buffer = bytearray()
        try:
            body = _Body(self._response)
            while True:
                data = body.read()
                if not data:
                    return
                buffer += data
                frames, used = _frames(buffer)
                del buffer[:used]
                if frames:
                    yield frames
                if self._caught_up() and self._interrupted.wait(_LINGER):
                    return
        except _STREAM_ERRORS:  # broken or interrupted: the stream ends here
            return

    def interrupt(self) -> None:
        self._interrupted.set()
        with contextlib.suppress(OSError, AttributeError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with contextlib.suppress(*_STREAM_ERRORS):
            self._response.close()


def _frames(buffer: bytearray) -> tuple[list[tuple[int, bytes]], int]:
    """The whole frames (8-byte header: source, size) at the start of ``buffer``, and how
    many bytes they took; a frame split across reads waits for the rest."""
    frames, at = [], 0
    while len(buffer) - at >= 8:
        source, size = struct.unpack_from(">BxxxL", buffer, at)
        if len(buffer) - at - 8 < size:
            break
        frames.append((source, bytes(buffer[at + 8 : at + 8 + size])))
        at += 8 + size
    return frames, at


class DockerLogs:
    """Opens containers' log streams for ``DockerEngine.follow_logs``. Docker errors are
    translated here into BackendError (the daemon did not answer)."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client
        self._tty: set[str] = set()  # containers already warned about

    def follow(self, container_id: str, since_ns: int) -> LogStream | None:
        """A stream of the container's records from ``since_ns`` on, following it while it
        runs; None if the container is gone."""
        api = self.client.api
        params: dict[str, Any] = {"stdout": 1, "stderr": 1, "timestamps": 1, "follow": 1}
        if since_ns:
            params["since"] = _docker_since(since_ns)
        try:
            info = api.inspect_container(container_id)
            if info["Config"].get("Tty"):  # no frames to tell sources apart; slipway sets none
                if container_id not in self._tty:
                    self._tty.add(container_id)
                    log.warning("not collecting logs of %s: it has a TTY", container_id[:12])
                return None
            # What Container.logs() does, minus the part that forgets each frame's source.
            response = api._get(
                api._url("/containers/{0}/logs", container_id), params=params, stream=True
            )
            api._raise_for_status(response)
            sock = api._get_raw_response_socket(response)
        except docker.errors.NotFound:
            return None
        except _DOCKER_ERRORS as exc:
            if isinstance(exc, docker.errors.APIError) and exc.status_code == 409:
                return None  # dead or being removed: as good as gone
            raise BackendError(f"following logs of {container_id[:12]} failed: {exc}") from exc
        api._disable_socket_timeout(sock)  # idle apps must not time the stream out
        return _Stream(response, sock, bool(info["State"].get("Running")))
