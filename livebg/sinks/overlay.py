"""Overlay output: the person with a transparent background, for OBS and browsers.

:class:`OverlaySink` serves one page over HTTP (loopback by default) that
OBS's Browser Source, or any browser, opens; frames reach the page over a
WebSocket on the same port, carrying real alpha, so no chroma key is needed::

    http://127.0.0.1:8765/?token=...      the page (livebg/sinks/overlay_page.html)
    ws://127.0.0.1:8765/ws?token=...      the frames

Each frame travels as one binary message: a 12-byte header, the colour as
JPEG, then the alpha as a one-channel JPEG at quality :data:`ALPHA_QUALITY`;
the page decodes both with the browser's own decoder (``createImageBitmap``)
and recombines them with WebGL where a GPU runs it, else on a 2D canvas.
Measured on the real pipeline's mattes at 1280x720 (``scripts/overlay_size.py``):
the colour is a median 69 KB and the alpha 40 KB (deflated losslessly, as
before, it was 149 KB; at half resolution 41 KB too but up to 114 levels off
at hard edges); the alpha's error is 0.7 levels of 255 on average across
edges, at most 19, and none where the matte is flat. Chromium receives 108 KB
a frame.

Threads: ``write()`` (the daemon's output thread) only checks the frame, copies it
into a one-frame slot and wakes the encoder; the encoder thread turns the
latest frame into JPEG bytes (OpenCV releases the GIL) and hands them to the
server's asyncio loop, which sends them to each client. Latest frame wins at
every step: a frame that arrives while the encoder is busy replaces the one
waiting, and a client that has ``WINDOW`` frames not yet drawn (the page
acknowledges each) is skipped until it catches up, so a slow page never makes
the pipeline wait and never builds a backlog.

Access: every request needs the token (``?token=``), else 403; a WebSocket
handshake whose ``Origin`` is not the page's own is refused (403), as is a
request whose ``Host`` is not exactly ``NAME[:PORT]`` with a loopback NAME
when the server is bound to loopback (DNS rebinding; ``evil.com@127.0.0.1``
and ``127.0.0.1/x`` are refused). A handshake with no ``Origin`` (not a
browser, e.g. a script) is accepted with the token. Only GET and HEAD are
answered (HEAD without a body). The log shows the token's first characters
only; the full address is in ``livebg ctl status`` (a private socket).

Bounded like a public server: at most :data:`MAX_CONNECTIONS` TCP connections
(when full, the oldest that is not an open page is cut to make room), a
request must arrive complete within :data:`OPEN_TIMEOUT` s, and the
``websockets`` log is rate-limited and carries no tracebacks. On close, pages
get :data:`CLOSE_GRACE` s to say goodbye, then every connection is cut: a
half-sent request or a page that stopped reading never delays a stop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import functools
import http
import ipaddress
import logging
import re
import secrets
import socket
import struct
import termios
import threading
import time
from importlib import resources
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Response

from livebg.sinks.base import SinkBase, SinkError, check_frame

log = logging.getLogger(__name__)


class RateLimited(logging.Filter):
    """Lets each message through at most once per ``interval`` s, never with a traceback.

    The exception's text is kept in the message; the next record let through
    says how many like it were dropped.
    """

    def __init__(self, interval: float = 30.0):
        super().__init__()
        self.interval = interval
        self._last: dict[str, float] = {}
        self._dropped: dict[str, int] = {}

    def allow(self, key: str) -> int | None:
        """None while ``key`` was let through less than ``interval`` s ago, else how many
        records of it were dropped since."""
        now = time.monotonic()
        if now - self._last.get(key, -1e9) < self.interval:
            self._dropped[key] = self._dropped.get(key, 0) + 1
            return None
        if len(self._last) > 256:
            self._last.clear()
        self._last[key] = now
        return self._dropped.pop(key, 0)

    def filter(self, record: logging.LogRecord) -> bool:
        dropped = self.allow(str(record.msg)[:80])
        if dropped is None:
            return False
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
        if dropped:
            text += f" [{dropped} more like this not logged]"
        record.msg, record.args = text, ()
        record.exc_info = record.exc_text = record.stack_info = None
        return True


# websockets logs every connection at INFO and a traceback per broken request; keep
# ours, and of its only warnings, rate-limited and without tracebacks.
_ws_log = logging.getLogger(__name__ + ".websockets")
_ws_log.setLevel(logging.WARNING)
_ws_log.addFilter(RateLimited())

WINDOW = 2  # frames sent to a client and not yet acknowledged by its page
MAX_CONNECTIONS = 64  # TCP connections at once: pages plus requests being read
OPEN_TIMEOUT = 3.0    # s for a connection to send its whole request (a browser: < 10 ms)
CLOSE_GRACE = 0.1     # s pages get on close before being cut (loopback answers in < 10 ms)
_HOST = re.compile(r"(?:\[(?P<ip6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9.-]+))(?::[0-9]{1,5})?")
_PAGE_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def _host_name(header: str) -> str | None:
    """The name in a ``Host`` header of the form NAME[:PORT] or [IPv6][:PORT]; else None."""
    m = _HOST.fullmatch(header)
    return None if m is None else (m["ip6"] or m["name"])


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


HEADER = struct.Struct("<4sHHI")  # magic, width, height, length of the colour JPEG
MAGIC = b"LBG2"
# Alpha JPEG quality: q90 is 40 KB at 720p with a mean edge error of 0.7/255 (max 19);
# q85 saves 7 KB for 0.9 (max 25), q95 costs 16 KB more for 0.5 (scripts/overlay_size.py).
ALPHA_QUALITY = 90
# JPEG leaves flat areas within a level or two of 0 and 255; the page maps
# [SNAP, 255 - SNAP] onto [0, 255] so that they are exactly clear and opaque.
SNAP = 2


def _jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise SinkError("overlay: OpenCV cannot encode JPEG")
    return buf.tobytes()


def encode_frame(image: np.ndarray, quality: int) -> bytes:
    """One overlay message: header, JPEG of the colour, one-channel JPEG of the alpha.

    ``image`` is BGRA (straight alpha) or BGR (then fully opaque). The alpha
    is encoded at ``max(quality, ALPHA_QUALITY)``.
    """
    h, w = image.shape[:2]
    if image.shape[2] == 4:
        colour = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        alpha = _jpeg(cv2.extractChannel(image, 3), max(int(quality), ALPHA_QUALITY))
    else:
        colour = image
        alpha = _opaque_alpha(w, h)
    jpeg = _jpeg(colour, quality)
    return b"".join((HEADER.pack(MAGIC, w, h, len(jpeg)), jpeg, alpha))


def decode_frame(data: bytes, *, snap: bool = True) -> np.ndarray:
    """The inverse of :func:`encode_frame` (BGRA uint8) as the page draws it, for tests and tools.

    ``snap``: map alpha [SNAP, 255 - SNAP] onto [0, 255] like the page does.
    """
    magic, w, h, n = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ValueError("not an overlay frame")
    start = HEADER.size
    colour = cv2.imdecode(np.frombuffer(data, np.uint8, n, start), cv2.IMREAD_COLOR)
    alpha = cv2.imdecode(np.frombuffer(data, np.uint8, offset=start + n), cv2.IMREAD_GRAYSCALE)
    if colour is None or alpha is None or alpha.shape != (h, w):
        raise ValueError("not an overlay frame")
    if snap:
        a = (alpha.astype(np.float32) - SNAP) * (255 / (255 - 2 * SNAP))
        alpha = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    return np.dstack([colour, alpha])


@functools.lru_cache(maxsize=4)
def _opaque_alpha(w: int, h: int) -> bytes:
    return _jpeg(np.full((h, w), 255, np.uint8), ALPHA_QUALITY)


class _Connection(ServerConnection):
    """A websockets connection that the sink counts from its first byte (see MAX_CONNECTIONS)."""

    def __init__(self, *args, sink: OverlaySink, **kwargs):
        super().__init__(*args, **kwargs)
        self._sink = sink

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._sink._admit(self)

    def connection_lost(self, exc) -> None:
        self._sink._conns.pop(self, None)
        super().connection_lost(exc)


def _unsent(conn: ServerConnection) -> int:
    """Bytes queued for the peer: in asyncio's buffer plus the kernel's (Linux TIOCOUTQ)."""
    n = conn.transport.get_write_buffer_size()
    sock = conn.transport.get_extra_info("socket")
    if sock is not None:
        try:
            n += struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
        except (OSError, AttributeError):
            pass
    return n


def _cut(conn: ServerConnection) -> None:
    """Close at once with a reset: what is queued for the peer is dropped, not sent."""
    sock = conn.transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    conn.transport.abort()


class _Client:
    def __init__(self, ws):
        self.ws = ws
        self.wake = asyncio.Event()
        self.inflight = 0
        self.sent_seq = 0
        self.sent = 0


class OverlaySink(SinkBase):
    """Serves the latest frame, with alpha, to browser pages over a WebSocket.

    Wants alpha (``wants_alpha``) while a page is connected: the daemon then
    hands it BGRA frames with the matte as alpha whatever the background mode;
    with no page it asks for nothing extra, and ``write`` only counts the frame,
    so an unwatched overlay costs nothing. A BGR frame (e.g. a 'camera
    unavailable' card) is shown opaque.

    Args:
        width, height: frame size.
        fps: the stream's rate (informational).
        host: address to bind; loopback unless you want other machines to see it.
        port: TCP port; 0 picks a free one (see ``port`` / ``url`` after opening).
        token: the secret in the URL; empty for a random one per start.
        max_fps: most frames per second encoded and sent; extra frames are dropped.
        quality: JPEG quality 1-100 of the colour (the alpha: at least ALPHA_QUALITY).

    Raises:
        SinkError: the port cannot be bound (in use, no permission).
    """

    def __init__(self, width: int, height: int, fps: float = 30.0, *, host: str = "127.0.0.1",
                 port: int = 8765, token: str = "", max_fps: float = 30.0, quality: int = 80):
        super().__init__(width, height)
        self.host = host
        self.token = token or secrets.token_urlsafe(16)
        self.max_fps = float(max_fps)
        self.quality = int(quality)
        self._page = resources.files("livebg.sinks").joinpath("overlay_page.html").read_bytes()
        self._refusals = RateLimited(60.0)  # our own refusal lines
        self._conns: dict[_Connection, None] = {}  # open TCP connections, oldest first
        self._pages: set[_Connection] = set()      # of those, open WebSocket pages
        self._min_interval = 0.75 / self.max_fps if self.max_fps > 0 else 0.0
        self._last_accept = -1e9
        # Counters (read them for stats; written by one thread each).
        self.frames = 0          # write() calls
        self.encoded = 0         # frames encoded
        self.encode_seconds = 0.0
        self.bytes_encoded = 0
        self.last_frame: np.ndarray | None = None  # the latest write()'s frame (not a copy)
        # Writer thread -> encoder thread: one slot, latest wins.
        self._cond = threading.Condition()
        self._raw: np.ndarray | None = None
        self._closing = False
        # Encoder -> loop: latest encoded frame and its sequence number.
        self._encoded: bytes = b""
        self._seq = 0
        self._clients: set[_Client] = set()
        self._nclients = 0  # read without the loop by write()
        self._alpha_promised = False  # what wants_alpha said last

        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._server = None
        self._requested_port = port
        self._loop_thread = threading.Thread(target=self._run_loop, name="overlay-server",
                                             daemon=True)
        self._loop_thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            self._loop_thread.join()
            e = self._startup_error
            raise SinkError(f"overlay: cannot listen on {host}:{port} "
                            f"({getattr(e, 'strerror', None) or e}); set overlay.port to a free "
                            "port, or 0 for any") from None
        self.port = self._server.sockets[0].getsockname()[1]
        self._encoder = threading.Thread(target=self._encode_loop, name="overlay-encoder",
                                         daemon=True)
        self._encoder.start()
        if not _is_loopback(host):
            log.warning("overlay: listening on %s, reachable from other machines; anyone "
                        "with the URL's token can watch", host)
        log.info("overlay: %s (the full address: `livebg ctl status`)", self.masked_url)

    # -- public -----------------------------------------------------------

    @property
    def url(self) -> str:
        """The page's address, token included (what OBS's Browser Source opens)."""
        host = self.host
        if host in ("", "0.0.0.0", "::"):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/?token={self.token}"

    @property
    def masked_url(self) -> str:
        """:attr:`url` with all but the token's first 4 characters hidden (for logs)."""
        return self.url.replace(self.token, self.token[:4] + "...")

    @property
    def clients(self) -> int:
        """Pages connected now."""
        return self._nclients

    @property
    def connections(self) -> int:
        """TCP connections open now (pages and requests being read)."""
        return len(self._conns)

    @property
    def wants_alpha(self) -> bool:
        """True while a page is connected: only then is a BGRA cut-out worth making."""
        self._alpha_promised = self._nclients > 0
        return self._alpha_promised

    def write(self, image: np.ndarray) -> None:
        """Hand the frame to the encoder; never waits for it or for clients."""
        check_frame(image, self.size)
        self.frames += 1
        self.last_frame = image
        if not self._nclients:
            return
        if image.shape[2] == 3 and not self._alpha_promised:
            # Composed before the first page connected, without the cut-out: skip
            # it rather than flash the whole frame; the next one has alpha.
            self._alpha_promised = True
            return
        now = time.monotonic()
        if now - self._last_accept < self._min_interval:
            return
        self._last_accept = now
        frame = image.copy()
        with self._cond:
            self._raw = frame
            self._cond.notify()

    def close(self) -> None:
        """Stop the encoder and the server; closes every client's connection."""
        if self._closing:
            return
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._encoder.join(timeout=5)
        if self._loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
            try:
                fut.result(timeout=5)
            except Exception as e:  # noqa: BLE001 - closing must not raise
                log.debug("overlay: shutdown: %s", e)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop_thread.join(timeout=5)

    def describe(self) -> str:
        """For logs: the address with the token masked."""
        return f"overlay {self.masked_url}"

    def private_describe(self) -> str:
        """For the private control socket's status: the address with the token."""
        return f"overlay {self.url}"

    # -- encoder thread ---------------------------------------------------

    def _encode_loop(self) -> None:
        while True:
            with self._cond:
                while self._raw is None and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                frame, self._raw = self._raw, None
            t0 = time.perf_counter()
            try:
                data = encode_frame(frame, self.quality)
            except Exception:  # noqa: BLE001 - keep serving; say why once per frame
                log.exception("overlay: cannot encode a frame")
                continue
            self.encode_seconds += time.perf_counter() - t0
            self.encoded += 1
            self.bytes_encoded += len(data)
            try:
                self._loop.call_soon_threadsafe(self._publish, data)
            except RuntimeError:  # loop closed
                return

    # -- server loop (its own thread) --------------------------------------

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._server = self._loop.run_until_complete(self._start())
        except BaseException as e:  # noqa: BLE001 - reported by __init__
            self._startup_error = e
            self._ready.set()
            self._loop.close()
            return
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            # Whatever is left (handlers of cut connections) ends here, not at garbage
            # collection with "Exception ignored" tracebacks.
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            if pending:
                self._loop.run_until_complete(asyncio.wait(pending, timeout=1.0))
            self._loop.close()

    async def _start(self):
        # JPEG does not deflate: no compression. Pages only send "ack": small max_size.
        return await serve(self._handler, self.host, self._requested_port,
                           process_request=self._process_request, compression=None,
                           max_size=1024, server_header=None, logger=_ws_log,
                           open_timeout=OPEN_TIMEOUT, close_timeout=CLOSE_GRACE,
                           create_connection=functools.partial(_Connection, sink=self))

    async def _shutdown(self) -> None:
        for conn in list(self._pages):
            if _unsent(conn):
                _cut(conn)  # a page that stopped reading: no goodbye, no queued frames
        self._server.close()
        try:
            await asyncio.wait_for(asyncio.shield(self._server.wait_closed()), CLOSE_GRACE)
        except TimeoutError:
            pass
        # A half-sent request, or a page that stopped reading (its bytes still queued):
        # cut them, so that neither the stop nor the kernel waits on them.
        for conn in list(self._conns):
            _cut(conn)
        try:
            await asyncio.wait_for(asyncio.shield(self._server.wait_closed()), 1.0)
        except TimeoutError:
            log.debug("overlay: some connections did not end; the loop cancels them")

    def _admit(self, conn: _Connection) -> None:
        """Count a new TCP connection; when over the cap, cut the oldest non-page (or it)."""
        self._conns[conn] = None
        if len(self._conns) <= MAX_CONNECTIONS:
            return
        victim = next((c for c in self._conns if c not in self._pages and c is not conn), conn)
        self._conns.pop(victim, None)
        _cut(victim)
        self._refusals_log("too many", "overlay: more than %d connections: closed the oldest one "
                           "that is not a page", MAX_CONNECTIONS)

    def _publish(self, data: bytes) -> None:
        self._encoded = data
        self._seq += 1
        for c in self._clients:
            c.wake.set()

    def _refusals_log(self, kind: str, msg: str, *args) -> None:
        """WARNING at most once a minute per ``kind`` (a page with a stale token retries
        every second; a flood must not fill the log)."""
        dropped = self._refusals.allow(kind)
        if dropped is not None:
            log.warning(msg + (f" [{dropped} more like this not logged]" if dropped else ""),
                        *args)

    def _refuse(self, connection, kind: str, why: str):
        self._refusals_log(kind, "overlay: refused a request from %s: %s",
                           connection.remote_address[0], why)
        return connection.respond(http.HTTPStatus.FORBIDDEN, f"Forbidden: {why}\n")

    def _process_request(self, connection, request):
        response = self._route(connection, request)
        if response is not None and request.method == "HEAD":
            response = dataclasses.replace(response, body=b"")  # headers only, same length
        return response

    def _route(self, connection, request):
        if request.method not in ("GET", "HEAD"):
            return connection.respond(http.HTTPStatus.METHOD_NOT_ALLOWED, "GET only\n")
        url = urlsplit(request.path)
        token = parse_qs(url.query).get("token", [""])[0]
        if not secrets.compare_digest(token.encode(), self.token.encode()):
            return self._refuse(connection, "token", "wrong or missing token")
        hosts = request.headers.get_all("Host")
        if len(hosts) != 1 or len(request.headers.get_all("Origin")) > 1:
            return connection.respond(http.HTTPStatus.BAD_REQUEST, "Bad request\n")
        host = hosts[0]
        name = _host_name(host)
        if name is None:
            return self._refuse(connection, "host", f"Host {host[:80]!r} is not NAME[:PORT]")
        if _is_loopback(self.host) and not _is_loopback(name):
            return self._refuse(connection, "host", f"Host {host[:80]!r} is not a loopback "
                                "address")
        if url.path == "/ws":
            if request.method != "GET":
                return connection.respond(http.HTTPStatus.METHOD_NOT_ALLOWED, "GET only\n")
            origin = next(iter(request.headers.get_all("Origin")), None)
            if origin is not None and origin != f"http://{host}":
                return self._refuse(connection, "origin", f"Origin {origin[:80]!r} is not this "
                                    "page's")
            return None  # go on with the WebSocket handshake
        if url.path in ("/", "/index.html"):
            headers = Headers(_PAGE_HEADERS)
            headers["Content-Length"] = str(len(self._page))
            return Response(http.HTTPStatus.OK.value, "OK", headers, self._page)
        return connection.respond(http.HTTPStatus.NOT_FOUND, "Not found\n")

    async def _handler(self, ws) -> None:
        client = _Client(ws)
        self._pages.add(ws)
        self._clients.add(client)
        self._nclients = len(self._clients)
        log.info("overlay: page connected from %s (%d open)", ws.remote_address[0],
                 self._nclients)
        reader = asyncio.create_task(self._read_acks(client))
        try:
            while not reader.done():
                await client.wake.wait()
                client.wake.clear()
                if client.inflight >= WINDOW or client.sent_seq == self._seq:
                    continue
                client.sent_seq = self._seq
                client.inflight += 1
                client.sent += 1
                await ws.send(self._encoded)
        except Exception as e:  # noqa: BLE001 - a client going away is normal
            log.debug("overlay: client: %s", e)
        finally:
            reader.cancel()
            self._pages.discard(ws)
            self._clients.discard(client)
            self._nclients = len(self._clients)
            log.info("overlay: page disconnected after %d frames (%d open)", client.sent,
                     self._nclients)

    async def _read_acks(self, client: _Client) -> None:
        try:
            async for _ in client.ws:
                client.inflight = max(0, client.inflight - 1)
                client.wake.set()
        finally:
            client.wake.set()  # lets the sender see the end
