"""``livebg bench``: per-stage milliseconds and end-to-end throughput.

Measures on the built-in sample, rendered once at the requested size into an
MPEG-4 file in a temporary folder, so that decoding is real:

1. stages, one after the other on one thread: grab (decode), segment,
   refine (and its sub-steps), temporal, composite (composite_pair, both
   outputs at once, when an overlay is among ``output.sinks``); median and p95;
2. the daemon's threaded engine as a batch, file source to null sink,
   unthrottled: frames/s;
3. the daemon paced like a camera (``--paced``), with what a real webcam
   and virtual camera cost (``paced.includes``): the sample's frames as
   JPEG bytes (1280x720 by default, 4:2:2, quality 90), decoded per frame
   by the camera source's own MJPEG decode
   (:func:`~livebg.stages.sources.decode_mjpeg`), into the real
   virtual-camera sink over an emulated v4l2loopback backend that converts
   each frame to the I420 the device would be given
   (:mod:`livebg.eval.loopback`). It reports latency, CPU (process CPU time
   over wall time), CPU milliseconds per frame for each engine thread and
   each timed stage (thread CPU time); or a long paced run watching memory
   and threads (``--soak``).

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

from livebg.config import Config
from livebg.engine.threads import tune_process
from livebg.factory import make_processor
from livebg.sinks.files import VideoFileSink
from livebg.sinks.null import NullSink
from livebg.stages.segment import pick_model
from livebg.stages.sources import JpegStreamSource, SampleSource, VideoFileSource
from livebg.stats import StageStats


def render_clip(path: Path, width: int, height: int, frames: int) -> Path:
    """The sample rendered to ``path`` (MPEG-4), ``frames`` long."""
    source = SampleSource(width=width, height=height, count=frames)
    with VideoFileSink(path, width, height, source.fps, overwrite=True) as sink:
        while (frame := source.read()) is not None:
            sink.write(frame.image)
    return path


PACED_INCLUDES = ["mjpeg-decode", "virtual-camera-conversion"]
JPEG_QUALITY = 90  # a webcam's MJPEG: ~200 KiB a 720p frame of the sample at 4:2:2


def jpeg_stream(width: int, height: int, frames: int) -> JpegStreamSource:
    """The sample as a webcam's MJPEG stream: ``frames`` JPEGs in memory, decoded per read."""
    sample = SampleSource(width=width, height=height, count=frames)
    return JpegStreamSource.encode((sample.render(i) for i in range(frames)),
                                   quality=JPEG_QUALITY, fps=sample.fps)


def call_stream(width: int, height: int, *, still: int = 75, move: int = 45,
                noise: float = 2.0) -> JpegStreamSource:
    """A call as a webcam sees it: the sample's person holds still for ``still`` frames,
    then moves for ``move`` frames (then the loop jumps back: motion again), with
    fresh sensor noise (sigma ``noise`` levels) on every frame, as MJPEG."""
    sample = SampleSource(width=width, height=height, count=None)
    rng = np.random.default_rng(0)
    poses = [0] * still + list(range(move))

    def frames():
        for k in poses:
            img = sample.render(k).astype(np.float32)
            img += rng.normal(0.0, noise, img.shape).astype(np.float32)
            yield np.clip(img, 0, 255).astype(np.uint8)

    return JpegStreamSource.encode(frames(), quality=JPEG_QUALITY, fps=sample.fps)


def _pct(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    return {"p50": float(np.median(v)), "p95": float(np.percentile(v, 95)), "n": int(v.size)}


def overlay_configured(cfg: Config) -> bool:
    """An overlay among the configured sinks: the output is also composed with alpha."""
    return "overlay" in cfg.output.sinks


class _AlphaNullSink(NullSink):
    """Stands in for the overlay: discards BGRA frames."""

    wants_alpha = True

    def describe(self) -> str:
        return "null (alpha)"


def measure_stages(cfg: Config, clip: Path, frames: int) -> dict[str, dict[str, float]]:
    """Per-stage times on one thread over ``frames`` frames (after 10 warm-up frames)."""
    tune_process()  # as in the daemon
    source = VideoFileSource(clip, loop=True)
    stats = StageStats(window=frames)
    processor = make_processor(cfg, source.width, source.height, stats=stats)
    sub: dict[str, list[float]] = {}
    grab: list[float] = []
    timings = processor.refiner.timings  # every Refiner has it (stages/protocols.py)
    with source:
        for i in range(frames + 10):
            t0 = time.perf_counter()
            frame = source.read()
            dt = (time.perf_counter() - t0) * 1e3
            if i == 10:
                stats = processor.stats = StageStats(window=frames)
                sub.clear()
            image = frame.image
            processor.compose_outputs(image, processor.alpha(image),
                                      with_alpha=overlay_configured(cfg))
            if i >= 10:
                grab.append(dt)
                for k, v in timings().items():
                    sub.setdefault(k, []).append(v)
    result = {"grab": _pct(grab)}
    result.update(stats.summary())
    for k, v in sub.items():
        result[f"refine.{k}"] = _pct(v)
    return result


def measure_cpu(cfg: Config, stream: JpegStreamSource, frames: int) -> dict:
    """The paced run's work, serially on this thread for every frame: CPU ms per frame by stage.

    The same parts as the paced run (MJPEG decode, the processor, the
    virtual-camera sink over the emulated loopback) without the threads and
    the pacing, so that nothing is dropped and a busy machine changes little
    but the wall time: process CPU time (``time.process_time``, so OpenCV's
    worker threads count too) of each step, averaged over ``frames`` frames
    after 10 warm-up frames. ``cores_at_fps``
    is the total as a share of one core at the stream's rate.
    """
    from livebg.eval.loopback import EmulatedVirtualCameraSink

    tune_process()  # as in the daemon
    w, h = stream.width, stream.height
    proc = make_processor(cfg, w, h)
    sink = EmulatedVirtualCameraSink(w, h, stream.fps)
    with_alpha = overlay_configured(cfg)
    steps = ("mjpeg-decode", "segment", "matte", "composite", "virtual-camera")
    cpu = dict.fromkeys(steps, 0.0)
    gate = proc.still
    for i in range(frames + 10):
        if i == 10:
            cpu = dict.fromkeys(steps, 0.0)
            proc.stats = StageStats(window=frames)
            skipped0 = gate.skipped if gate is not None else 0
        t = [time.process_time()]
        image = stream.read().image
        t.append(time.process_time())
        seg = proc.segment(image)
        t.append(time.process_time())
        alpha = proc.matte(image, seg)
        t.append(time.process_time())
        out, _ = proc.compose_outputs(image, alpha, with_alpha=with_alpha)
        t.append(time.process_time())
        sink.write(out)
        t.append(time.process_time())
        for k, a, b in zip(steps, t, t[1:]):
            cpu[k] += (b - a) * 1e3
    sink.close()
    out = {k: v / frames for k, v in cpu.items()}
    out["total"] = sum(out.values())
    out.update({f"{k} (within)": v["mean"] for k, v in proc.stats.cpu_summary().items()
                if k in ("refine", "temporal")})
    out["cores_at_fps"] = out["total"] * stream.fps / 1e3
    out["still_fraction"] = ((gate.skipped - skipped0) / frames) if gate is not None else 0.0
    return out


def _proc_status() -> dict[str, int]:
    """Resident memory (KiB) and thread count of this process, from /proc."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "Threads"):
                out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def _daemon(cfg: Config, clip: Path | JpegStreamSource, *, live: bool,
            max_frames: int | None = None):
    """The daemon's engine on ``clip``: paced like a camera when ``live``.

    A video file goes to null sinks; a :class:`JpegStreamSource` (the paced
    bench) goes to the emulated virtual camera. With an overlay configured a
    second null sink wants alpha, so both outputs are composed
    ("composite_pair") and timed as in the real daemon.
    """
    from livebg.engine.capture import PacedSource
    from livebg.engine.daemon import Daemon

    def source(_cfg, is_live):
        src = clip if isinstance(clip, JpegStreamSource) else VideoFileSource(clip, loop=True)
        return PacedSource(src) if is_live else src

    virtual = isinstance(clip, JpegStreamSource)
    return Daemon(cfg, realtime=live, max_frames=max_frames, source_factory=source,
                  sink_factory=lambda _c, w, h, fps: _sinks(cfg, w, h, fps, virtual),
                  control=False, watch_config=False)


def _sinks(cfg: Config, w: int, h: int, fps: float, virtual: bool) -> list:
    if virtual:
        from livebg.eval.loopback import EmulatedVirtualCameraSink

        sinks = [EmulatedVirtualCameraSink(w, h, fps)]
    else:
        sinks = [NullSink(w, h)]
    if overlay_configured(cfg):
        sinks.append(_AlphaNullSink(w, h))
    return sinks


def thread_cpu() -> dict[str, float]:
    """CPU seconds so far of each live ``livebg-*`` thread, by name (Linux thread clocks)."""
    import threading

    out = {}
    for t in threading.enumerate():
        if not t.name.startswith("livebg-") or t.ident is None:
            continue
        try:
            out[t.name.removeprefix("livebg-")] = time.clock_gettime(
                time.pthread_getcpuclockid(t.ident))
        except (OSError, AttributeError):
            continue
    return out


def _run_in_thread(d):
    import threading

    t = threading.Thread(target=d.run, name="livebg-bench-daemon", daemon=True)
    t.start()
    return t


def _wait_frames(d, n: int, timeout: float = 600.0) -> None:
    # Generous: on a 2-core machine under load 12 the net and kernels took over 60 s to
    # warm up (a test's paced run then timed nothing). It returns at the n-th frame.
    end = time.monotonic() + timeout
    while d.stats.frames < n and time.monotonic() < end and not d.stopping:
        time.sleep(0.005)


def measure_daemon(cfg: Config, clip: Path, frames: int) -> dict[str, float]:
    """The daemon's threaded pipeline, file -> null sink, unthrottled (after 20 warm-up frames)."""
    d = _daemon(cfg, clip, live=False, max_frames=frames + 20)
    t = _run_in_thread(d)
    _wait_frames(d, 20)
    d.reset_stats(window=max(300, frames))
    f0, t0, cpu0 = d.stats.frames, time.perf_counter(), time.process_time()
    t.join()
    seconds = time.perf_counter() - t0
    n = d.stats.frames - f0
    cpu = time.process_time() - cpu0
    return {"frames": n, "seconds": seconds, "fps": n / seconds if seconds else 0.0,
            "cpu_cores": cpu / seconds if seconds else 0.0}


def measure_paced(cfg: Config, clip: Path | JpegStreamSource, seconds: float, *,
                  sample_every: float = 0.0, progress=None, window: int = 9000,
                  min_frames: int = 0) -> dict:
    """The daemon at the camera's pace (30 fps, frames stamped on delivery) for ``seconds``.

    Returns capture-to-output latency (over the last ``window`` frames), CPU
    use (cores busy: process CPU time over wall time), CPU ms per output
    frame of each engine thread (``threads_cpu_ms``) and of each timed stage
    (``stages_cpu_ms``: thread CPU time per call), and with ``sample_every``
    a series of (seconds, RSS KiB, threads) samples for the soak test. With
    ``min_frames`` it runs on past ``seconds`` (up to 600 s) until that many
    frames were timed, for tests on a machine too busy to keep pace.
    """
    d = _daemon(cfg, clip, live=True)
    t = _run_in_thread(d)
    _wait_frames(d, 30)
    d.reset_stats(window=window)  # timings from here on, after the warm-up
    th0 = thread_cpu()
    gate = getattr(d.processor, "still", None)
    g0 = (gate.skipped, gate.full) if gate is not None else (0, 0)
    f0, t0, cpu0 = d.stats.frames, time.perf_counter(), time.process_time()
    samples = []
    next_sample = 0.0

    def more() -> bool:
        elapsed = time.perf_counter() - t0
        return t.is_alive() and (elapsed < seconds or (
            d.stats.frames - f0 < min_frames and elapsed < 600.0))

    while more():
        elapsed = time.perf_counter() - t0
        if sample_every and elapsed >= next_sample:
            st = _proc_status()
            samples.append((round(elapsed, 1), st.get("VmRSS", 0), st.get("Threads", 0)))
            next_sample += sample_every
            if progress:
                progress(samples[-1], d.stats)
        time.sleep(min(0.2, max(0.005, seconds - elapsed)))
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    th1 = thread_cpu()
    g1 = (gate.skipped, gate.full) if gate is not None else (0, 0)
    summary = d.stats.summary()
    cpu_stages = d.stats.cpu_summary()
    frames = d.stats.frames - f0
    d.stop()
    t.join(timeout=5)
    st = _proc_status()
    samples.append((round(wall, 1), st.get("VmRSS", 0), st.get("Threads", 0)))
    lat = summary.pop("latency", {"p50": float("nan"), "p95": float("nan"), "n": 0})
    out = {"seconds": wall, "frames": frames, "fps": frames / wall if wall else 0.0,
           "latency_ms": {"p50": lat["p50"], "p95": lat["p95"]},
           "cpu_cores": cpu / wall if wall else 0.0, "dropped": d.stats.dropped,
           "cpu_ms_per_frame": 1e3 * cpu / frames if frames else float("nan"),
           "still_fraction": ((g1[0] - g0[0]) / max(1, g1[0] - g0[0] + g1[1] - g0[1])),
           "stages_ms": summary,
           "stages_cpu_ms": {k: v["mean"] for k, v in cpu_stages.items()},
           "threads_cpu_ms": {k: 1e3 * (th1[k] - v) / frames if frames else float("nan")
                              for k, v in th0.items() if k in th1}}
    if isinstance(clip, JpegStreamSource):
        out["includes"] = list(PACED_INCLUDES)
    if d.errors:
        out["error"] = repr(d.errors[0])
    if sample_every:
        out["samples"] = samples
    return out


def soak(cfg: Config, seconds: float, *, width: int = 1280, height: int = 720,
         sample_every: float = 10.0, warmup: float = 60.0) -> dict:
    """A long paced run: resident memory and thread count over time.

    Growth is measured from the first sample after ``warmup`` seconds (caches,
    allocator pools and JIT code settle in the first minute) to the end.
    """
    import logging

    log = logging.getLogger("livebg.eval.bench")
    r = measure_paced(cfg, jpeg_stream(width, height, 120), seconds, sample_every=sample_every,
                      progress=lambda s, st: log.warning("soak t=%ss rss=%d KiB threads=%d "
                                                         "frames=%d", s[0], s[1], s[2],
                                                         st.frames))
    samples = r["samples"]
    base = next((s for s in samples if s[0] >= warmup), samples[0])
    end = samples[-2] if len(samples) > 1 else samples[-1]  # last sample while running
    r["rss_kib"] = {"start": samples[0][1], "after_warmup": base[1], "end": end[1],
                    "max": max(s[1] for s in samples[:-1] or samples)}
    r["rss_growth_pct"] = 100.0 * (end[1] - base[1]) / base[1] if base[1] else float("nan")
    r["threads"] = {"after_warmup": base[2], "end": end[2],
                    "max": max(s[2] for s in samples[:-1] or samples)}
    return r


def run(cfg: Config, *, frames: int = 300, width: int = 1280, height: int = 720,
        paced: float = 10.0) -> dict:
    """All measurements as a JSON-ready dict."""
    with tempfile.TemporaryDirectory(prefix="livebg-bench-") as tmp:
        clip = render_clip(Path(tmp) / "sample.mp4", width, height, 120)
        stages = measure_stages(cfg, clip, frames)
        daemon = measure_daemon(cfg, clip, frames)
        stream = jpeg_stream(width, height, 120)
        paced_r = measure_paced(cfg, stream, paced) if paced else None
        if paced_r is not None:
            paced_r["serial_cpu_ms"] = measure_cpu(cfg, stream, min(frames, 240))
            # The same work on a call-like stream (still 2.5 s, moving 1.5 s).
            paced_r["serial_cpu_ms_call"] = measure_cpu(cfg, call_stream(width, height),
                                                        min(frames, 240))
    from livebg.factory import make_segmenter

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
        "daemon": daemon,
        "paced": paced_r,
    }


def format_table(r: dict) -> str:
    w, h = r["frame"]
    lines = [(f"livebg bench: {w}x{h}, {r['model']} net on "
             f"{'CUDA' if r['provider'].startswith('CUDA') else 'CPU'} ({r['threads']} thread), "
             f"refine {r['refine']}, background {r['background']}, {r['machine']}"),
             "",
             f"{'stage':<22}{'p50 ms':>9}{'p95 ms':>9}",
             "-" * 40]
    for k, v in r["stages_ms"].items():
        lines.append(f"{k:<22}{v['p50']:>9.2f}{v['p95']:>9.2f}")
    d = r["daemon"]
    lines += ["-" * 40,
              (f"daemon (threaded, file -> null sink, unthrottled): {d['fps']:.1f} frames/s "
              f"over {d['frames']} frames, {d['cpu_cores']:.2f} cores busy")]
    q = r.get("paced")
    if q:
        lines.append(f"daemon paced like a camera ({q['fps']:.1f} frames/s for "
                     f"{q['seconds']:.0f} s, including {', '.join(q.get('includes', []))}): "
                     f"capture-to-output latency {q['latency_ms']['p50']:.1f} ms p50, "
                     f"{q['latency_ms']['p95']:.1f} ms p95; CPU {q['cpu_cores'] * 100:.0f} % "
                     f"of one core ({q['cpu_ms_per_frame']:.1f} ms a frame); "
                     f"{q['dropped']} frames dropped")
        lines.append("")
        for key, what in (("serial_cpu_ms", "the paced run's work serially, every frame"),
                          ("serial_cpu_ms_call", "the same on a call (still 2.5 s, moving 1.5 s)")):
            c = q[key]
            lines.append(f"{what}: {c['total']:.1f} CPU ms a frame "
                         f"({c['cores_at_fps'] * 100:.0f} % of one core at 30 frames/s; "
                         f"{c['still_fraction'] * 100:.0f} % of frames still): " + ", ".join(
                             f"{k} {v:.2f}" for k, v in c.items()
                             if k not in ("total", "cores_at_fps", "still_fraction")))
        lines += ["paced, CPU ms per frame by thread: " + ", ".join(
            f"{k} {v:.2f}" for k, v in q["threads_cpu_ms"].items()),
            "paced, CPU ms per call by stage: " + ", ".join(
            f"{k} {v:.2f}" for k, v in q["stages_cpu_ms"].items())]
    return "\n".join(lines)


def format_soak(r: dict) -> str:
    rss, th = r["rss_kib"], r["threads"]
    return (f"soak: {r['seconds']:.0f} s paced, {r['frames']} frames ({r['fps']:.1f}/s), "
            f"{r['dropped']} dropped; resident memory {rss['after_warmup'] / 1024:.1f} MiB after "
            f"warm-up -> {rss['end'] / 1024:.1f} MiB at the end ({r['rss_growth_pct']:+.2f} %), "
            f"max {rss['max'] / 1024:.1f} MiB; threads {th['after_warmup']} -> {th['end']} "
            f"(max {th['max']}); latency p50 {r['latency_ms']['p50']:.1f} ms, "
            f"p95 {r['latency_ms']['p95']:.1f} ms; CPU {r['cpu_cores'] * 100:.0f} % of one core")


def main(cfg: Config, *, frames: int = 300, as_json: bool = False, width: int = 1280,
         height: int = 720, paced: float = 10.0, soak_seconds: float = 0.0) -> int:
    if soak_seconds:
        result = soak(cfg, soak_seconds, width=width, height=height)
        print(json.dumps(result, indent=2) if as_json else format_soak(result))
        ok = result["rss_growth_pct"] < 5 and result["threads"]["end"] <= \
            result["threads"]["after_warmup"]
        return 0 if ok else 1
    result = run(cfg, frames=frames, width=width, height=height, paced=paced)
    print(json.dumps(result, indent=2) if as_json else format_table(result))
    return 0
