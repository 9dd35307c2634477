"""Per-stage timing: rolling medians and 95th percentiles, one log line a period."""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np


class StageStats:
    """Rolling window of per-stage durations and frame events. Thread-safe.

    Times are recorded in milliseconds; ``window`` bounds memory (the newest
    ``window`` samples of each stage are kept).
    """

    def __init__(self, window: int = 300):
        self._lock = threading.Lock()
        self._start(window)

    def _start(self, window: int) -> None:
        self._window = window
        self._ms: dict[str, deque] = {}
        self._cpu: dict[str, list[float]] = {}  # stage -> [CPU ms in total, calls]
        self._done: deque = deque(maxlen=window)  # output times, seconds (monotonic)
        self.frames = 0
        self.dropped = 0

    def reset(self, window: int | None = None) -> None:
        """Forget every sample and count (e.g. after a warm-up); keeps or sets ``window``.

        In place, so every stage holding this object keeps reporting to it.
        """
        with self._lock:
            self._start(self._window if window is None else window)

    def drop(self, n: int = 1) -> None:
        """Count ``n`` frames dropped by a hand-off (from any thread)."""
        with self._lock:
            self.dropped += n

    def add(self, stage: str, ms: float) -> None:
        with self._lock:
            q = self._ms.get(stage)
            if q is None:
                q = self._ms[stage] = deque(maxlen=self._window)
            q.append(ms)

    def add_cpu(self, stage: str, ms: float) -> None:
        """Thread CPU time (ms) one call of ``stage`` took (kept as a running total)."""
        with self._lock:
            acc = self._cpu.get(stage)
            if acc is None:
                acc = self._cpu[stage] = [0.0, 0]
            acc[0] += ms
            acc[1] += 1

    def cpu_summary(self) -> dict[str, dict[str, float]]:
        """{stage: {"mean": CPU ms per call, "total": CPU ms, "n": calls}} since this was made."""
        with self._lock:
            return {k: {"mean": v[0] / v[1] if v[1] else 0.0, "total": v[0], "n": v[1]}
                    for k, v in self._cpu.items()}

    def frame_done(self, latency_ms: float | None = None) -> None:
        with self._lock:
            self.frames += 1
            self._done.append(time.monotonic())
        if latency_ms is not None:
            self.add("latency", latency_ms)

    def fps(self) -> float:
        """Output frames per second over the window."""
        with self._lock:
            if len(self._done) < 2:
                return 0.0
            span = self._done[-1] - self._done[0]
            return (len(self._done) - 1) / span if span > 0 else 0.0

    def summary(self) -> dict[str, dict[str, float]]:
        """{stage: {"p50": ms, "p95": ms, "n": count}} for every stage seen."""
        with self._lock:
            items = {k: np.asarray(v, dtype=np.float64) for k, v in self._ms.items() if v}
        return {k: {"p50": float(np.median(v)), "p95": float(np.percentile(v, 95)), "n": len(v)}
                for k, v in items.items()}

    def line(self) -> str:
        """One profiler-like line: ``fps 30.0 | grab 1.2 | segment 3.4 | ...`` (p50 ms)."""
        parts = [f"fps {self.fps():5.1f}"]
        for k, v in self.summary().items():
            parts.append(f"{k} {v['p50']:.1f}/{v['p95']:.1f}")
        return " | ".join(parts) + " (ms p50/p95)"


class Timer:
    """``with Timer(stats, "segment"):`` records the block's duration in ms.

    Both the wall time (:meth:`StageStats.add`) and the calling thread's CPU
    time (:meth:`StageStats.add_cpu`, ``time.thread_time``).
    """

    __slots__ = ("c0", "stage", "stats", "t0")

    def __init__(self, stats: StageStats, stage: str):
        self.stats, self.stage = stats, stage

    def __enter__(self):
        self.c0 = time.thread_time()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.stats.add(self.stage, (time.perf_counter() - self.t0) * 1e3)
        self.stats.add_cpu(self.stage, (time.thread_time() - self.c0) * 1e3)
