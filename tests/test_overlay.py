"""The overlay output: HTTP page + WebSocket frames with alpha, access rules, a real browser."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from livebg.sinks.base import SinkError
from livebg.sinks.overlay import WINDOW, OverlaySink, decode_frame, encode_frame
from livebg.sinks.registry import open_sink

W, H = 1280, 720
CHROMIUM = "/usr/bin/chromium"
# As root Chromium needs --no-sandbox; the rest keep it from calling Google on a closed network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def disc_frame(w=W, h=H, centre=None, radius=200, color=(40, 60, 220)) -> np.ndarray:
    """BGRA: a disc of ``color`` with alpha 255 on alpha 0 (whose colour is green, to show leaks)."""
    img = np.zeros((h, w, 4), np.uint8)
    img[..., 1] = 255
    cx, cy = centre or (w // 2, h // 2)
    cv2.circle(img, (cx, cy), radius, (*color, 255), -1)
    return img


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def ws_url(sink: OverlaySink, token: str | None = None) -> str:
    return f"ws://127.0.0.1:{sink.port}/ws?token={sink.token if token is None else token}"


@pytest.fixture
def sink():
    with OverlaySink(W, H, 30, port=0) as s:
        yield s


# -- encoding --------------------------------------------------------------------------------


def test_frame_carries_colour_and_alpha_clean_where_flat_close_at_edges():
    img = disc_frame(640, 360, radius=100)
    ramp = np.linspace(0, 255, 200).astype(np.uint8)
    img[250:300, 20:220, 3] = ramp  # a soft edge, 200 px wide
    data = encode_frame(img, 80)
    assert len(data) < 40_000
    back = decode_frame(data)
    assert back.shape == (360, 640, 4)
    a, b = img[..., 3].astype(int), back[..., 3].astype(int)
    # Beyond the 8x8 blocks that hold a hard step (JPEG ripples there): exactly clear or opaque.
    kernel = np.ones((17, 17), np.uint8)
    clear = cv2.erode((a == 0).astype(np.uint8), kernel) > 0
    opaque = cv2.erode((a == 255).astype(np.uint8), kernel) > 0
    assert (b[clear] == 0).all() and (b[opaque] == 255).all()
    assert np.abs(b - a).max() <= 64  # next to the disc's hard edge
    assert np.abs(b[250:300, 40:200] - a[250:300, 40:200]).max() <= 6
    assert (b[0:100, 0:100] == 0).all() and (b[170:190, 310:330] == 255).all()
    assert np.abs(back[180, 320, :3].astype(int) - (40, 60, 220)).max() < 12
    # BGR frames: opaque everywhere.
    assert (decode_frame(encode_frame(img[..., :3].copy(), 80))[..., 3] == 255).all()


def test_real_matte_frame_is_small_and_its_alpha_close():
    """The real pipeline's soft matte at 720p: deflated losslessly its alpha was ~150 KB."""
    from livebg.config import Config
    from livebg.factory import make_processor
    from livebg.sinks.overlay import HEADER
    from livebg.stages.sources import SampleSource

    proc = make_processor(Config(), W, H)
    src = SampleSource(width=W, height=H, count=None)
    for i in range(4):
        image = src.render(8 * i)
        cutout = proc.compositor.compose_pair(image, proc.alpha(image))[1]
    data = encode_frame(cutout, 80)
    alpha_bytes = len(data) - HEADER.size - HEADER.unpack_from(data)[3]
    assert alpha_bytes < 80_000, f"alpha {alpha_bytes} bytes"
    a, b = cutout[..., 3].astype(int), decode_frame(data)[..., 3].astype(int)
    soft = (a > 5) & (a < 250)
    assert soft.sum() > 1000 and np.abs(b - a)[soft].mean() < 3


# -- HTTP / WebSocket access without a browser -----------------------------------------------


def test_page_needs_the_token(sink):
    assert sink.url.startswith(f"http://127.0.0.1:{sink.port}/?token=")
    assert len(sink.token) >= 20
    assert sink.url in sink.private_describe() and sink.token not in sink.describe()
    with urllib.request.urlopen(sink.url, timeout=5) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/html")
        assert b"livebg overlay" in r.read()
    base = f"http://127.0.0.1:{sink.port}/"
    assert http_status(base) == 403
    assert http_status(base + "?token=wrong") == 403
    assert http_status(base + "?token=" + sink.token[:-1]) == 403
    assert http_status(base + "elsewhere?token=" + sink.token) == 404


def test_token_from_config_and_random_otherwise():
    with OverlaySink(64, 48, port=0, token="fixed-token-for-obs-123") as a:
        assert a.token == "fixed-token-for-obs-123"
    with OverlaySink(64, 48, port=0) as b, OverlaySink(64, 48, port=0) as c:
        assert b.token != c.token


def test_websocket_refuses_wrong_token_foreign_origin_and_foreign_host(sink):
    async def status(url, **kw):
        try:
            async with connect(url, open_timeout=5, **kw):
                return 101
        except InvalidStatus as e:
            return e.response.status_code

    async def go():
        own = f"http://127.0.0.1:{sink.port}"
        assert await status(ws_url(sink), origin=own) == 101
        assert await status(ws_url(sink)) == 101  # no Origin: not a browser, has the token
        assert await status(ws_url(sink, "wrong"), origin=own) == 403
        assert await status(ws_url(sink, ""), origin=own) == 403
        assert await status(ws_url(sink), origin="http://evil.example") == 403
        assert await status(ws_url(sink), origin=f"http://127.0.0.1:{sink.port + 1}") == 403
        # DNS rebinding: a foreign name that resolves to 127.0.0.1.
        rebound = f"ws://evil.example:{sink.port}/ws?token={sink.token}"
        assert await status(rebound, host="127.0.0.1", port=sink.port) == 403
        assert await status(ws_url(sink), additional_headers={"Host": "evil.example"}) == 400

    asyncio.run(go())


def test_port_in_use_is_a_clear_error(sink):
    with pytest.raises(SinkError, match="overlay.port"):
        OverlaySink(64, 48, port=sink.port)


def test_open_sink_dispatches_with_options():
    with open_sink("overlay", 64, 48, 30, overlay={"port": 0, "max_fps": 10}) as s:
        assert isinstance(s, OverlaySink) and s.max_fps == 10
        assert s.describe().startswith("overlay http://127.0.0.1:")


def test_contract_checks(sink):
    with pytest.raises(TypeError):
        sink.write(np.zeros((H, W, 4), np.float32))
    with pytest.raises(ValueError):
        sink.write(np.zeros((H // 2, W, 4), np.uint8))


def test_wants_alpha_and_takes_bgr_quietly(sink, caplog):
    """The daemon gives the overlay BGRA whatever the background; a BGR card is just opaque."""
    assert sink.wants_alpha is False  # no page connected: no cut-out needed
    bgra = disc_frame()
    with caplog.at_level(logging.WARNING, logger="livebg.sinks.overlay"):
        sink.write(bgra)
        assert sink.last_frame is bgra
        for _ in range(60):
            sink.write(np.zeros((H, W, 3), np.uint8))
    assert sink.frames == 61 and sink.last_frame.shape == (H, W, 3)
    assert not caplog.records


def test_slow_client_never_blocks_the_writer_nor_builds_a_backlog():
    """A client that never acknowledges gets WINDOW frames, then none; write() stays quick."""
    frames = [disc_frame(centre=(300 + 40 * i, 360)) for i in range(10)]
    received = []
    sink = OverlaySink(W, H, port=0, max_fps=1000)  # no practical cap: every write counts

    async def go():
        async with connect(ws_url(sink)) as ws:
            while sink.clients == 0:
                await asyncio.sleep(0.01)
            for i in range(200):  # would hang here if write() waited for the client
                sink.write(frames[i % 10])
                await asyncio.sleep(0.002)
            try:
                while True:
                    received.append(await asyncio.wait_for(ws.recv(), 0.5))
            except asyncio.TimeoutError:
                pass

    with sink:
        asyncio.run(go())
    assert len(received) == WINDOW
    assert sink.encoded < 200  # the encoder skipped frames that were already stale


def test_acknowledging_client_gets_the_latest_frames(sink):
    async def go():
        got = 0
        async with connect(ws_url(sink)) as ws:
            while sink.clients == 0:
                await asyncio.sleep(0.01)
            for i in range(10):
                sink.write(disc_frame(centre=(300 + 60 * i, 360)))
                msg = await asyncio.wait_for(ws.recv(), 5)
                await ws.send("ack")
                got += 1
                alpha = decode_frame(msg)[..., 3]
                assert alpha[360, 300 + 60 * i] == 255  # this frame's disc, not an old one
                await asyncio.sleep(1 / 25)
        return got

    assert asyncio.run(go()) == 10


def test_close_ends_connections_and_frees_the_port():
    s = OverlaySink(64, 48, port=0)
    port = s.port

    async def go():
        async with connect(f"ws://127.0.0.1:{port}/ws?token={s.token}") as ws:
            while s.clients == 0:
                await asyncio.sleep(0.01)
            await asyncio.get_running_loop().run_in_executor(None, s.close)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)

    asyncio.run(go())
    with OverlaySink(64, 48, port=port) as again:  # a restarted daemon gets the same URL port
        assert again.port == port


# -- issue 11 item 15: bounded connections, quick close, strict Host, HEAD, masked token -----


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _eof_or_reset(sock: socket.socket, deadline_s: float = 30.0) -> bool:
    """True once the server closed ``sock`` (EOF or reset); drains what it sent first."""
    sock.settimeout(deadline_s)
    try:
        while sock.recv(1 << 20):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _raw_http(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(request)
        out = b""
        while chunk := c.recv(65536):
            out += chunk
    return out


def test_half_sent_request_and_a_page_that_never_reads_do_not_hold_up_close():
    sink = OverlaySink(W, H, port=0, max_fps=1000)
    half = socket.create_connection(("127.0.0.1", sink.port))
    half.sendall(b"GET /?token=" + sink.token.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    stuck = socket.create_connection(("127.0.0.1", sink.port))
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.sendall(b"GET /ws?token=" + sink.token.encode() + b" HTTP/1.1\r\n"
                  b"Host: 127.0.0.1:" + str(sink.port).encode() + b"\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 13\r\n\r\n")
    end = time.monotonic() + 30
    while sink.clients == 0 and time.monotonic() < end:
        time.sleep(0.01)
    assert sink.clients == 1
    noise = np.random.default_rng(0).integers(0, 255, (H, W, 4), np.uint8)  # ~2.7 MB frames
    for _ in range(20):  # more than the socket buffers hold: the server's send is stuck
        sink.write(noise)
        time.sleep(0.02)
    t0 = time.perf_counter()
    sink.close()
    logging.getLogger(__name__).info("close took %.2f s", time.perf_counter() - t0)
    assert not sink._loop_thread.is_alive() and sink.connections == 0
    assert _eof_or_reset(half) and _eof_or_reset(stuck), "close cuts every connection"
    half.close()
    stuck.close()


def test_a_flood_of_idle_connections_is_capped_and_does_not_fill_the_log(sink, caplog):
    from livebg.sinks.overlay import MAX_CONNECTIONS

    caplog.set_level(logging.DEBUG)
    before = _fds()
    flood = []
    # Like a daemon under systemd (soft limit 1024): room for the flood's own ends, the
    # capped server ends and asyncio's accept batch (100), not for 300 server ends.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    top = max(int(fd) for fd in os.listdir("/proc/self/fd"))  # the limit is on fd numbers
    resource.setrlimit(resource.RLIMIT_NOFILE, (top + 1 + 300 + MAX_CONNECTIONS + 120, hard))
    try:
        for i in range(300):
            c = socket.create_connection(("127.0.0.1", sink.port), timeout=10)
            if i % 2:
                c.sendall(b"GET / HTTP/1.1\r\nHo")  # half a request, never finished
            flood.append(c)
        _wait_for_the_cap(sink, before, flood, MAX_CONNECTIONS)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    async def page_gets_a_frame():
        async with connect(ws_url(sink), open_timeout=30) as ws:
            while sink.clients == 0:
                await asyncio.sleep(0.01)
            sink.write(disc_frame())
            return decode_frame(await asyncio.wait_for(ws.recv(), 30)).shape

    assert asyncio.run(page_gets_a_frame()) == (H, W, 4)  # the real page still gets in
    for c in flood:
        c.close()
    assert not [r for r in caplog.records if r.exc_info], "no traceback in the log"
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) <= 3


def _wait_for_the_cap(sink, before: int, flood: list, cap: int) -> None:
    end = time.monotonic() + 60
    while _fds() - before - len(flood) > cap + 8 and time.monotonic() < end:
        time.sleep(0.05)
    server_side = _fds() - before - len(flood)
    assert server_side <= cap + 8, f"{server_side} descriptors held for the flood"


def test_host_header_must_be_exactly_a_loopback_name(sink):
    def status(host: str) -> int:
        reply = _raw_http(sink.port, f"GET /?token={sink.token} HTTP/1.1\r\nHost: {host}\r\n"
                                     "\r\n".encode())
        return int(reply.split(b" ", 2)[1])

    port = sink.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "127.0.0.1", f"[::1]:{port}"):
        assert status(host) == 200, host
    for host in (f"evil.com@127.0.0.1:{port}", f"127.0.0.1/x:{port}", "127.0.0.1/x",
                 f"evil.com:{port}", f"127.0.0.1.evil.com:{port}", f"127.0.0.1:{port}@evil.com"):
        assert status(host) == 403, host


def test_head_has_headers_only_and_other_methods_are_refused(sink):
    host = f"Host: 127.0.0.1:{sink.port}\r\n\r\n".encode()
    reply = _raw_http(sink.port, f"HEAD /?token={sink.token} HTTP/1.1\r\n".encode() + host)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and body == b""
    assert f"content-length: {len(sink._page)}".encode() in head.lower()
    reply = _raw_http(sink.port, b"HEAD /?token=wrong HTTP/1.1\r\n" + host)
    assert reply.startswith(b"HTTP/1.1 403") and reply.endswith(b"\r\n\r\n")
    reply = _raw_http(sink.port, f"DELETE /?token={sink.token} HTTP/1.1\r\n".encode() + host)
    assert reply.startswith(b"HTTP/1.1 405")


def test_the_token_never_reaches_the_log(caplog):
    caplog.set_level(logging.DEBUG)
    with OverlaySink(64, 48, port=0) as s:
        assert s.token not in s.describe() and s.token[:4] in s.describe()
        assert s.url in s.private_describe()
        http_status(f"http://127.0.0.1:{s.port}/?token=wrong")
    assert caplog.records and not [r for r in caplog.records if s.token in r.getMessage()]


# -- issue 15 item 11: an unwatched overlay costs nothing -------------------------------------


def test_daemon_makes_the_cut_out_only_while_a_page_watches(tmp_path):
    from conftest import write_sample_clip

    from livebg.config import Config, set_value
    from livebg.engine.daemon import Daemon

    clip = write_sample_clip(tmp_path / "clip.avi", 320, 180, 20)
    cfg = Config()
    for k, v in {"input": str(clip), "output.sinks": ["null", "overlay"], "overlay.port": 0,
                 "refine.mode": "none", "model.name": "landscape", "log.stats_interval": 0,
                 "daemon.socket": "off"}.items():
        cfg = set_value(cfg, k, v)
    d = Daemon(cfg, realtime=True, watch_config=False)
    t = threading.Thread(target=d.run, daemon=True)
    t.start()
    try:
        end = time.monotonic() + 60
        while d.stats.frames < 10 and time.monotonic() < end:
            time.sleep(0.05)
        assert d.stats.frames >= 10
        stages = d.stats.summary()
        assert "composite" in stages and "composite_pair" not in stages
        overlay = next(s for s in d.sinks if isinstance(s, OverlaySink))
        assert overlay.encoded == 0

        async def watch():
            async with connect(ws_url(overlay), open_timeout=30) as ws:
                for _ in range(3):
                    frame = decode_frame(await asyncio.wait_for(ws.recv(), 30))
                    await ws.send("ack")
                return frame

        frame = asyncio.run(watch())
        assert frame.shape == (180, 320, 4)
        assert (frame[..., 3] == 0).any() and (frame[..., 3] == 255).any()  # a real cut-out
        assert "composite_pair" in d.stats.summary()
    finally:
        d.stop()
        t.join(10)


# -- in a real browser -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium package for the "
                    "browser tests of the overlay")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright not installed (pip install playwright)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Feeder:
    """Writes frames to the sink at ``fps`` from a thread, like a pipeline would."""

    def __init__(self, sink, frames, fps=30.0):
        self.sink, self.frames, self.period = sink, frames, 1.0 / fps
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        t, i = time.perf_counter(), 0
        while not self._stop.is_set():
            self.sink.write(self.frames[i % len(self.frames)])
            i += 1
            t += self.period
            time.sleep(max(0.0, t - time.perf_counter()))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def stats(page) -> dict:
    return page.evaluate("() => ({...window.livebgOverlay})")


READ_PIXELS = """([points]) => {
  const src = document.getElementById('overlay');
  const c = document.createElement('canvas');
  c.width = src.width; c.height = src.height;
  const ctx = c.getContext('2d');
  ctx.drawImage(src, 0, 0);
  return points.map(([x, y]) => Array.from(ctx.getImageData(x, y, 1, 1).data));
}"""


@pytest.mark.slow
def test_browser_keeps_drawing_frames_with_real_transparency(browser, sink):
    frames = [disc_frame(centre=(W // 2 + 8 * i, H // 2)) for i in range(8)]
    page = browser.new_page(viewport={"width": W, "height": H})
    try:
        response = page.goto(sink.url)
        assert response.status == 200
        page.wait_for_function("() => window.livebgOverlay && window.livebgOverlay.connected",
                               timeout=10_000)
        with Feeder(sink, frames, fps=30):
            page.wait_for_function("() => window.livebgOverlay.frames > 5", timeout=30_000)
            first = stats(page)
            # The page keeps drawing new frames (its rate is measured by
            # scripts/overlay_encodings.py, never asserted here).
            page.wait_for_function(f"() => window.livebgOverlay.frames > {first['frames'] + 30}",
                                   timeout=60_000)
            last = stats(page)
        # Software-only WebGL here (SwiftShader): the page picks the cheaper 2D canvas.
        assert last["renderer"] == "2d"
        assert (last["width"], last["height"]) == (W, H)
        assert_disc_over_transparency(page)
    finally:
        page.close()


def assert_disc_over_transparency(page):
    # Every frame's disc covers (W/2 + 28, H/2); (20, 20) and 300 px right are far outside.
    cx, cy = W // 2 + 28, H // 2
    inside, corner, outside = page.evaluate(READ_PIXELS, [[[cx, cy], [20, 20], [cx + 300, cy]]])
    assert inside[3] == 255, inside
    r, g, b = inside[:3]
    assert abs(r - 220) < 16 and abs(g - 60) < 16 and abs(b - 40) < 16, inside
    assert corner == [0, 0, 0, 0], corner  # transparent, no green from the frame's colour
    assert outside == [0, 0, 0, 0], outside


@pytest.mark.slow
def test_browser_webgl_path_draws_the_same_transparency(browser, sink):
    frames = [disc_frame(centre=(W // 2 + 8 * i, H // 2)) for i in range(8)]
    page = browser.new_page(viewport={"width": W, "height": H})
    try:
        page.goto(sink.url + "&canvas=webgl")
        page.wait_for_function("() => window.livebgOverlay && window.livebgOverlay.connected",
                               timeout=10_000)
        with Feeder(sink, frames, fps=30):
            page.wait_for_function("() => window.livebgOverlay.frames > 5", timeout=20_000)
        assert stats(page)["renderer"].startswith("webgl")
        assert_disc_over_transparency(page)
    finally:
        page.close()


@pytest.mark.slow
def test_browser_refuses_wrong_token_and_foreign_origin(browser, sink):
    page = browser.new_page()
    try:
        bad = page.goto(f"http://127.0.0.1:{sink.port}/?token=not-the-token")
        assert bad.status == 403
        assert page.goto(f"http://127.0.0.1:{sink.port}/").status == 403
        # The real page with a wrong token: its WebSocket never opens.
        page.goto(sink.url.replace("token=", "token=x"))  # 403 page, no script runs
        # A foreign site that knows the token still cannot open the WebSocket (Origin check).
        page.route("http://evil.test/**", lambda route: route.fulfill(
            status=200, content_type="text/html", body="<title>evil</title>"))
        page.goto("http://evil.test/")
        result = page.evaluate("""(url) => new Promise(resolve => {
            const ws = new WebSocket(url);
            ws.onopen = () => resolve('open');
            ws.onerror = () => resolve('refused');
        })""", ws_url(sink))
        assert result == "refused"
        assert sink.clients == 0
    finally:
        page.close()
