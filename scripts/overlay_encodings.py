"""Measure the overlay's frame encodings, its live delivery to Chromium, and take a screenshot.

    python scripts/overlay_encodings.py                 # the tables
    python scripts/overlay_encodings.py --screenshot docs/overlay.png

1. Encode: ms and bytes per 1280x720 BGRA frame (the built-in sample, composited
   with ``background.mode: transparent`` over its true alpha) for each candidate.
2. Browser decode: ms per frame in headless Chromium (decode + texture upload,
   one frame after another) for the same candidates.
3. Live: the real OverlaySink fed at 30 fps from a thread with one Chromium page
   attached: frames/s drawn by the page, bytes/frame, page ms/frame, and this
   process's CPU with the overlay, without it (NullSink), and with no page.

Needs /usr/bin/chromium and playwright (the ``test`` extra). Figures depend on
the machine and its load: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import base64
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from livebg.stages.compose.compose import Compositor
from livebg.sinks.overlay import OverlaySink, encode_frame
from livebg.sinks.null import NullSink
from livebg.stages.sources import SampleSource

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
W, H = 1280, 720


def sample_frames(n: int = 30, processor=None) -> list[np.ndarray]:
    """BGRA frames of the moving sample: true alpha, or the real pipeline's when given."""
    src = SampleSource(width=W, height=H, count=None)
    comp = Compositor("transparent")
    frames = []
    for i in range(0, 4 * n, 4):
        image = src.render(i)
        frames.append(processor.process(image) if processor else
                      comp.compose(image, src.true_alpha(i)))
    return frames


def stacked_jpeg(f: np.ndarray, q: int) -> bytes:
    """Colour on top, alpha below as grey, in one JPEG of twice the height."""
    img = np.vstack([f[..., :3], cv2.cvtColor(np.ascontiguousarray(f[..., 3]), cv2.COLOR_GRAY2BGR)])
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])[1].tobytes()


CANDIDATES = {
    "jpeg q80 + grey jpeg alpha (chosen)": lambda f: encode_frame(f, 80),
    "jpeg q80, colour+alpha stacked": lambda f: stacked_jpeg(f, 80),
    "png rgba (level 1)": lambda f: cv2.imencode(".png", f, [cv2.IMWRITE_PNG_COMPRESSION, 1])[1].tobytes(),
    "webp rgba q80": lambda f: cv2.imencode(".webp", f, [cv2.IMWRITE_WEBP_QUALITY, 80])[1].tobytes(),
    "raw rgba": lambda f: cv2.cvtColor(f, cv2.COLOR_BGRA2RGBA).tobytes(),
}


def measure_encode(frames) -> dict[str, tuple[float, float]]:
    out = {}
    for name, fn in CANDIDATES.items():
        fn(frames[0])
        n = 6 if "webp" in name or "png" in name else len(frames)
        t0 = time.perf_counter()
        sizes = [len(fn(frames[i])) for i in range(n)]
        out[name] = ((time.perf_counter() - t0) / n * 1000, float(np.mean(sizes)))
    return out


DECODE_JS = """async ([kind, b64, w, h]) => {
  const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
  const c = document.createElement('canvas'); c.width = w; c.height = h;
  document.body.appendChild(c);
  const gl = c.getContext('webgl');
  gl.bindTexture(gl.TEXTURE_2D, gl.createTexture());
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
  gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
  const bitmap = async (data, type) => {
    const b = await createImageBitmap(new Blob([data], {type}),
                                      {premultiplyAlpha: 'none', colorSpaceConversion: 'none'});
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, b);
    b.close();
  };
  const inflate = async (data) => new Uint8Array(await new Response(
    new ReadableStream({start(k) { k.enqueue(data); k.close(); }})
      .pipeThrough(new DecompressionStream('deflate'))).arrayBuffer());
  const one = {
    chosen: async () => {
      const n = new DataView(bytes.buffer).getUint32(8, true);
      await Promise.all([bitmap(bytes.subarray(12, 12 + n), 'image/jpeg'),
                         bitmap(bytes.subarray(12 + n), 'image/jpeg')]);  // colour, alpha
    },
    jpeg: () => bitmap(bytes, 'image/jpeg'),
    png: () => bitmap(bytes, 'image/png'),
    webp: () => bitmap(bytes, 'image/webp'),
    raw: async () => gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, w, h, 0, gl.RGBA, gl.UNSIGNED_BYTE, bytes),
  }[kind];
  await one(); gl.finish();
  const N = 20, t0 = performance.now();
  for (let i = 0; i < N; i++) { await one(); gl.finish(); }
  c.remove();
  return (performance.now() - t0) / N;
}"""
KINDS = {"jpeg q80 + grey jpeg alpha (chosen)": "chosen", "jpeg q80, colour+alpha stacked": "jpeg",
         "png rgba (level 1)": "png", "webp rgba q80": "webp", "raw rgba": "raw"}


def launch(p):
    return p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def measure_decode(p, frames) -> dict[str, float]:
    browser = launch(p)
    page = browser.new_page()
    page.goto("about:blank")
    out = {}
    for name, fn in CANDIDATES.items():
        data = base64.b64encode(fn(frames[3])).decode()
        out[name] = page.evaluate(DECODE_JS, [KINDS[name], data, W, H])
    browser.close()
    return out


class Feeder(threading.Thread):
    def __init__(self, sink, frames, fps=30.0):
        super().__init__(daemon=True)
        self.sink, self.frames, self.period, self.stop = sink, frames, 1 / fps, threading.Event()

    def run(self):
        t, i = time.perf_counter(), 0
        while not self.stop.is_set():
            self.sink.write(self.frames[i % len(self.frames)])
            i += 1
            t += self.period
            time.sleep(max(0.0, t - time.perf_counter()))


def browser_cpu() -> float:
    """CPU seconds of this process's Chromium children."""
    import psutil

    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            if "chrom" in child.name():
                total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total


def cpu_while_feeding(sink, frames, seconds, page=None) -> tuple[float, dict]:
    feeder = Feeder(sink, frames)
    feeder.start()
    time.sleep(1.0)
    s0 = page.evaluate("() => ({...window.livebgOverlay})") if page else None
    b0, c0, t0 = browser_cpu(), time.process_time(), time.perf_counter()
    time.sleep(seconds)
    b1, c1, t1 = browser_cpu(), time.process_time(), time.perf_counter()
    s1 = page.evaluate("() => ({...window.livebgOverlay})") if page else None
    feeder.stop.set()
    feeder.join()
    live = {}
    if page:
        n = s1["frames"] - s0["frames"]
        live = {"fps": n / (t1 - t0), "cpu_browser": (b1 - b0) / (t1 - t0) * 100, "bytes": (s1["bytes"] - s0["bytes"]) / max(n, 1),
                "page_ms": (s1["decodeMs"] - s0["decodeMs"]) / max(n, 1)}
    return (c1 - c0) / (t1 - t0) * 100, live


def measure_live(p, frames, seconds=6.0) -> dict:
    out = {}
    with NullSink(W, H) as null:
        out["cpu_null"], _ = cpu_while_feeding(null, frames, seconds)
    with OverlaySink(W, H, port=0) as sink:
        out["cpu_no_page"], _ = cpu_while_feeding(sink, frames, seconds)
        browser = launch(p)
        page = browser.new_page(viewport={"width": W, "height": H})
        page.goto(sink.url)
        page.wait_for_function("() => window.livebgOverlay.connected")
        enc0, n0 = sink.encode_seconds, sink.encoded
        out["cpu_overlay"], live = cpu_while_feeding(sink, frames, seconds, page)
        out.update(live)
        out["encode_ms"] = (sink.encode_seconds - enc0) / max(sink.encoded - n0, 1) * 1000
        out["renderer"] = page.evaluate("() => window.livebgOverlay.renderer")
        browser.close()
    return out


def screenshot(p, path: Path) -> None:
    """The page over a checkerboard, fed the real pipeline's output."""
    from livebg.factory import make_processor
    from livebg.config import Config

    cfg = Config()
    cfg.background.mode = "transparent"
    processor = make_processor(cfg, W, H)
    frames = sample_frames(8, processor)
    with OverlaySink(W, H, port=0) as sink:
        browser = launch(p)
        page = browser.new_page(viewport={"width": W // 2, "height": H // 2})
        page.goto(sink.url)
        page.add_style_tag(content="html { background: repeating-conic-gradient(#9aa3ad 0 25%, "
                                   "#e4e8ec 0 50%) 0 0 / 32px 32px !important; }")
        page.wait_for_function("() => window.livebgOverlay.connected")
        feeder = Feeder(sink, frames[5:6])
        feeder.start()
        page.wait_for_function("() => window.livebgOverlay.frames > 10")
        page.screenshot(path=str(path))
        feeder.stop.set()
        feeder.join()
        browser.close()
    print(f"screenshot: {path}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--screenshot", type=Path, metavar="PNG", help="only take the screenshot")
    ap.add_argument("--seconds", type=float, default=6.0, help="seconds per live measurement")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} not found", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        if args.screenshot:
            screenshot(p, args.screenshot)
            return 0
        frames = sample_frames()
        enc = measure_encode(frames)
        dec = measure_decode(p, frames)
        print("| encoding | encode ms | KiB/frame | browser decode+upload ms |")
        print("| --- | --- | --- | --- |")
        for name in CANDIDATES:
            ms, size = enc[name]
            print(f"| {name} | {ms:.1f} | {size / 1024:.0f} | {dec[name]:.1f} |")
        live = measure_live(p, frames, args.seconds)
        print()
        print(f"live, 30 fps in, one page ({live['renderer']}):")
        print(f"  frames/s drawn {live['fps']:.1f}, {live['bytes'] / 1024:.0f} KiB/frame, "
              f"encode {live['encode_ms']:.1f} ms, page {live['page_ms']:.1f} ms/frame")
        print(f"  process CPU: NullSink {live['cpu_null']:.1f} %, overlay without a page "
              f"{live['cpu_no_page']:.1f} %, overlay with a page {live['cpu_overlay']:.1f} % "
              f"(added {live['cpu_overlay'] - live['cpu_null']:.1f} % of one core); "
              f"Chromium {live['cpu_browser']:.0f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
