"""What one 720p overlay frame weighs, and how faithful its alpha is: offline and in Chromium.

    python scripts/overlay_size.py [--photos DIR] [--no-browser]

1. Frames: the built-in sample and (``--photos``, e.g. the dev photos, for
   measuring only) still photos, through the real pipeline (default
   configuration: net, refinement, temporal stage), as the overlay's BGRA
   cut-out (``Compositor.compose_pair``), 1280x720.
2. Offline: bytes (median, max) of the colour JPEG and of each alpha
   candidate, and the alpha's error after decoding (and upsampling where it
   was sent small): mean |error| in the band around edges, the largest
   error, and the share of clear pixels (9 px from any edge) that are not clear.
3. Chromium (``/usr/bin/chromium``, playwright): the real OverlaySink fed these
   frames at 30 fps with one page attached; bytes per frame the page received
   and frames it drew.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import zlib
from pathlib import Path

import cv2
import numpy as np

from livebg.config import Config
from livebg.factory import make_processor
from livebg.sinks.overlay import ALPHA_QUALITY, OverlaySink, decode_frame, encode_frame
from livebg.stages.sources import SampleSource

W, H = 1280, 720
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def pipeline_frames(photos: Path | None) -> list[np.ndarray]:
    proc = make_processor(Config(), W, H)
    src = SampleSource(width=W, height=H, count=None)
    frames = []
    for i in range(0, 48, 4):
        image = src.render(i)
        frames.append(proc.compositor.compose_pair(image, proc.alpha(image))[1])
    for p in sorted(photos.glob("*.jpg"))[:12] if photos else []:
        image = cv2.resize(cv2.imread(str(p)), (W, H))
        proc.reset()
        frames.append(proc.compositor.compose_pair(image, proc.alpha(image))[1])
    return frames


def _jpeg(a: np.ndarray, q: int) -> bytes:
    return cv2.imencode(".jpg", a, [cv2.IMWRITE_JPEG_QUALITY, q])[1].tobytes()


def candidates(a: np.ndarray) -> dict[str, tuple[int, np.ndarray]]:
    """name -> (bytes, alpha as the page would get it)."""
    half = cv2.resize(a, (W // 2, H // 2), interpolation=cv2.INTER_AREA)

    def up(x):
        return cv2.resize(x, (W, H), interpolation=cv2.INTER_LINEAR)

    out = {"deflate (before)": (len(zlib.compress(a, 1)), a),
           "half, deflate": (len(zlib.compress(half, 6)), up(half))}
    for q in (85, 90, 95):
        b = _jpeg(a, q)
        out[f"grey jpeg q{q}"] = (len(b), cv2.imdecode(np.frombuffer(b, np.uint8), 0))
        b = _jpeg(half, q)
        out[f"half, grey jpeg q{q}"] = (len(b), up(cv2.imdecode(np.frombuffer(b, np.uint8), 0)))
    return out


def offline(frames: list[np.ndarray]) -> None:
    colour = [len(_jpeg(np.ascontiguousarray(f[..., :3]), 80)) for f in frames]
    print(f"{len(frames)} frames; colour JPEG q80: median {np.median(colour) / 1e3:.1f} KB, "
          f"max {max(colour) / 1e3:.1f} KB")
    rows: dict[str, list] = {}
    for f in frames:
        a = np.ascontiguousarray(f[..., 3])
        edge = cv2.dilate(((a > 5) & (a < 250)).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
        clear = cv2.erode((a == 0).astype(np.uint8), np.ones((19, 19), np.uint8)) > 0
        for name, (n, back) in candidates(a).items():
            d = np.abs(back.astype(int) - a)
            rows.setdefault(name, []).append((n, d[edge].mean(), d.max(),
                                              (back[clear] > 2).mean() * 100))
    print(f"{'alpha':22s} {'KB median':>9s} {'KB max':>7s} {'edge err':>8s} {'max err':>7s} "
          f"{'not clear %':>11s}")
    for name, r in rows.items():
        r = np.array(r)
        print(f"{name:22s} {np.median(r[:, 0]) / 1e3:9.1f} {r[:, 0].max() / 1e3:7.1f} "
              f"{r[:, 1].mean():8.2f} {r[:, 2].max():7.0f} {r[:, 3].mean():11.3f}")
    sizes = [len(encode_frame(f, 80)) for f in frames]
    errs = [np.abs(decode_frame(encode_frame(f, 80))[..., 3].astype(int) - f[..., 3]).max()
            for f in frames]
    print(f"overlay message now (colour q80 + alpha q{ALPHA_QUALITY}): median "
          f"{np.median(sizes) / 1e3:.1f} KB, max {max(sizes) / 1e3:.1f} KB; alpha as drawn "
          f"(snapped): largest error {max(errs)}")


def browser(frames: list[np.ndarray], seconds: float = 8.0) -> None:
    from playwright.sync_api import sync_playwright

    with OverlaySink(W, H, port=0) as sink, sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = b.new_page(viewport={"width": W, "height": H})
        page.goto(sink.url)
        page.wait_for_function("() => window.livebgOverlay && window.livebgOverlay.connected")
        stop = threading.Event()

        def feed():
            i = 0
            while not stop.is_set():
                sink.write(frames[i % len(frames)])
                i += 1
                time.sleep(1 / 30)

        t = threading.Thread(target=feed, daemon=True)
        t.start()
        page.wait_for_function("() => window.livebgOverlay.frames > 3", timeout=60_000)
        first = page.evaluate("() => ({...window.livebgOverlay})")
        time.sleep(seconds)
        last = page.evaluate("() => ({...window.livebgOverlay})")
        stop.set()
        t.join()
        n = last["frames"] - first["frames"]
        print(f"Chromium ({last['renderer']}): {n} frames drawn in {seconds:g} s, "
              f"{(last['bytes'] - first['bytes']) / max(1, n) / 1e3:.1f} KB per frame received, "
              f"{(last['decodeMs'] - first['decodeMs']) / max(1, n):.1f} ms per frame in the page")
        b.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=Path, help="a folder of .jpg photos to add")
    ap.add_argument("--no-browser", action="store_true")
    args = ap.parse_args()
    frames = pipeline_frames(args.photos)
    offline(frames)
    if not args.no_browser:
        browser(frames)
    return 0


if __name__ == "__main__":
    sys.exit(main())
