"""Milliseconds per 1280x720 frame of the ``subject: main`` stage, with one and two people.

    python scripts/subject_cost.py ../shared/data/portraits
    python scripts/subject_cost.py ../shared/data/portraits --baseline 38864aa --rounds 5

The stage's real input is made once per clip (cached under ``--cache``): each
1280x720 frame goes through the real segmenter and the temporal stage's first
step, as in :class:`livebg.processor.Processor`. Clips: the built-in sample
(one person) and the two-person cases of :mod:`livebg.eval.crowd`.

Timing: ``SubjectFilter.update`` alone, one OpenCV thread, every clip from a
reset, ``--rounds`` passes; the median and p95 over all frames of the wall
clock and of the thread's CPU time (which leaves out the time the thread
waited for a core: on a loaded machine the wall p95 is mostly that). The
machine is shared: compare figures from one run only. With ``--baseline
REV`` the stage as it is in git revision REV is timed too, its passes
interleaved with this tree's, and the outputs of the two are compared frame
by frame (the largest difference is printed: 0 means the same behaviour).
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

SIZE = (1280, 720)
CASES = ("one person (sample)", "behind_still", "behind_walk", "beside", "cross")


def _frames(data: Path, case: str, n: int) -> list[np.ndarray]:
    if case.startswith("one"):
        from livebg.stages.sources import SampleSource

        src = SampleSource(width=SIZE[0], height=SIZE[1], count=n)
        return [src.render(i) for i in range(n)]
    from subject_eval import _pair_clip

    return _pair_clip(data, case, SIZE, n).frames


def inputs(data: Path, cache: Path, n: int) -> dict[str, list[np.ndarray]]:
    """The subject stage's input per clip: float32 (h, w) probabilities after the temporal step."""
    from livebg import config
    from livebg.factory import make_segmenter, make_temporal

    out = {}
    cfg = config.Config()
    for case in CASES:
        path = cache / f"subject_cost_{case.split()[0]}_{n}.npy"
        if path.is_file():
            out[case] = list(np.load(path))
            continue
        seg, temporal = make_segmenter(cfg, *SIZE), make_temporal(cfg)
        probs = []
        for f in _frames(data, case, n):
            p = seg.segment(f).probability
            probs.append(temporal.update_probability(p, f) if temporal is not None else p)
        np.save(path, np.stack(probs))
        out[case] = probs
    return out


def _module_at(rev: str):
    """livebg/stages/subject.py as it is in git revision ``rev``, as a module."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:livebg/stages/subject.py"],
                         check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "subject_baseline.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("subject_baseline", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def one_pass(filt, probs: list[np.ndarray]) -> tuple[list[float], list[float], list[np.ndarray]]:
    """Wall and CPU milliseconds per frame, and the outputs, of one pass from a reset."""
    filt.reset()
    ms, cpu, outs = [], [], []
    for p in probs:
        t0, c0 = time.perf_counter(), time.thread_time()
        o = filt.update(p)
        ms.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.thread_time() - c0) * 1e3)
        outs.append(o)
    return ms, cpu, outs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="photos: images/ + masks/ (for the two-person clips)")
    ap.add_argument("--frames", type=int, default=90)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--baseline", help="also time the stage of this git revision, interleaved")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()))
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    from livebg.stages import subject

    probs = inputs(args.data, args.cache, args.frames)
    filters = {"this tree": subject.SubjectFilter()}
    if args.baseline:
        filters[args.baseline] = _module_at(args.baseline).SubjectFilter()
    for case, ps in probs.items():
        for f in filters.values():
            one_pass(f, ps[:5])  # warm up (numba, caches)
        ms, cpu = {k: [] for k in filters}, {k: [] for k in filters}
        diff = 0.0
        for _ in range(args.rounds):
            outs = {}
            for k, f in filters.items():
                t, c, outs[k] = one_pass(f, ps)
                ms[k] += t
                cpu[k] += c
            if len(outs) == 2:
                a, b = outs.values()
                diff = max(diff, max(float(np.abs(x - y).max()) for x, y in zip(a, b)))
        h, w = ps[0].shape
        for k, t in ms.items():
            c = cpu[k]
            print(f"{case:22s} {k:10s} net {w}x{h}: wall {np.median(t):.3f} ms p50, "
                  f"{np.percentile(t, 95):.3f} ms p95; CPU {np.median(c):.3f} ms p50, "
                  f"{np.percentile(c, 95):.3f} ms p95 ({len(t)} frames)")
        if len(filters) == 2:
            print(f"{case:22s} largest output difference: {diff:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
