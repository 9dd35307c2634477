"""``livebg bench``: per-stage milliseconds and end-to-end throughput.

Measures on the built-in sample, rendered once at the requested size into an
MPEG-4 file in a temporary folder, so that decoding is real:

1. stages, one after the other on one thread: grab (decode), segment,
   refine (and its sub-steps), temporal, composite; median and p95;
2. the threaded pipeline, file source to null sink, unthrottled: frames/s.

Figures come from this command only; no unit test times anything.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from livebg.build import make_processor
from livebg.config import Config
from livebg.pipeline import Pipeline
from livebg.segment import pick_model
from livebg.sinks import NullSink, VideoFileSink
from livebg.sources import SampleSource, VideoFileSource
from livebg.stats import StageStats


def render_clip(path: Path, width: int, height: int, frames: int) -> Path:
    """The sample rendered to ``path`` (MPEG-4), ``frames`` long."""
    source = SampleSource(width=width, height=height, count=frames)
    with VideoFileSink(path, width, height, source.fps, overwrite=True) as sink:
        while (frame := source.read()) is not None:
            sink.write(frame.image)
    return path


def _pct(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    return {"p50": float(np.median(v)), "p95": float(np.percentile(v, 95)), "n": int(v.size)}


def measure_stages(cfg: Config, clip: Path, frames: int) -> dict[str, dict[str, float]]:
    """Per-stage times on one thread over ``frames`` frames (after 10 warm-up frames)."""
    source = VideoFileSource(clip, loop=True)
    stats = StageStats(window=frames)
    processor = make_processor(cfg, source.width, source.height, stats=stats)
    sub: dict[str, list[float]] = {}
    grab: list[float] = []
    timings = getattr(processor.refiner, "timings", lambda: {})
    with source:
        for i in range(frames + 10):
            t0 = time.perf_counter()
            frame = source.read()
            dt = (time.perf_counter() - t0) * 1e3
            if i == 10:
                stats = processor.stats = StageStats(window=frames)
                sub.clear()
            processor.process(frame.image)
            if i >= 10:
                grab.append(dt)
                for k, v in timings().items():
                    sub.setdefault(k, []).append(v)
    result = {"grab": _pct(grab)}
    result.update(stats.summary())
    for k, v in sub.items():
        result[f"refine.{k}"] = _pct(v)
    return result


def measure_pipeline(cfg: Config, clip: Path, frames: int) -> dict[str, float]:
    """Threaded pipeline, file -> null sink, unthrottled."""
    source = VideoFileSource(clip, loop=True)
    with source:
        processor = make_processor(cfg, source.width, source.height)
        sink = NullSink(source.width, source.height)
        processor.process(source.read().image)  # warm-up outside the timing
        cpu0 = time.process_time()
        result = Pipeline(source, processor, [sink]).run(frames)
        cpu = time.process_time() - cpu0
    return {"frames": result.frames, "seconds": result.seconds, "fps": result.fps,
            "cpu_cores": cpu / result.seconds if result.seconds else 0.0}


def run(cfg: Config, *, frames: int = 300, width: int = 1280, height: int = 720) -> dict:
    """All measurements as a JSON-ready dict."""
    with tempfile.TemporaryDirectory(prefix="livebg-bench-") as tmp:
        clip = render_clip(Path(tmp) / "sample.mp4", width, height, 120)
        stages = measure_stages(cfg, clip, frames)
        pipe = measure_pipeline(cfg, clip, frames)
    from livebg.build import make_segmenter

    seg = make_segmenter(cfg, width, height)
    return {
        "frame": [width, height],
        "model": pick_model(cfg.model.name, width, height),
        "provider": seg.provider,
        "threads": cfg.model.threads,
        "refine": cfg.refine.mode,
        "background": cfg.background.mode,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "stages_ms": stages,
        "pipeline": pipe,
    }


def format_table(r: dict) -> str:
    w, h = r["frame"]
    lines = [f"livebg bench: {w}x{h}, {r['model']} net on "
             f"{'CUDA' if r['provider'].startswith('CUDA') else 'CPU'} ({r['threads']} thread), "
             f"refine {r['refine']}, background {r['background']}, {r['machine']}",
             "",
             f"{'stage':<22}{'p50 ms':>9}{'p95 ms':>9}",
             "-" * 40]
    for k, v in r["stages_ms"].items():
        lines.append(f"{k:<22}{v['p50']:>9.2f}{v['p95']:>9.2f}")
    p = r["pipeline"]
    lines += ["-" * 40,
              f"pipeline (threaded, file -> null sink): {p['fps']:.1f} frames/s over "
              f"{p['frames']} frames, {p['cpu_cores']:.2f} cores busy"]
    return "\n".join(lines)


def main(cfg: Config, *, frames: int = 300, as_json: bool = False, width: int = 1280,
         height: int = 720) -> int:
    result = run(cfg, frames=frames, width=width, height=height)
    print(json.dumps(result, indent=2) if as_json else format_table(result))
    return 0
