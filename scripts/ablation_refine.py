#!/usr/bin/env python
"""Ablation of the refinement stage on the dev photos: quality and milliseconds.

For every variant: mean IoU, boundary IoU (band of 2 % of the diagonal, Cheng
et al. 2021) and MAE inside that band over the dev photos (each refined at its
own size with scale-relative parameters), and the median / p95 milliseconds of
``refine`` on one 1280x720 frame, one OpenCV thread (numba kernels are
single-threaded). Timing interleaves the variants (one call each per round)
so that a busy machine slows them all alike; sub-step medians come from the
refiner's ``timings()``.

A label ending in ``-warm`` is scored on a second refine of the same photo
(warm start from the first); its last column shows the fraction of SLIC labels
that the warm iteration still changed and the solve's relative residual.

The photos are portrait-shaped, so the square net is used (``--model``).
``--split a`` / ``--split b`` score only the even / odd photos (sorted by
name): tune on one half, check on the other.

    /work/venv/bin/python scripts/ablation_refine.py                 # the table
    /work/venv/bin/python scripts/ablation_refine.py --variants none guided sss
    /work/venv/bin/python scripts/ablation_refine.py --timing-only --variants grid slic1500
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from livebg.eval.metrics import band_mae, boundary_iou, iou
from livebg.stages.refine.experimental import make_refiner  # flat options, research ones too
from livebg.stages.segment import Segmenter

DATA = Path("/work/shared/data/portraits")
SAMPLE = Path(__file__).resolve().parent.parent / "livebg" / "data" / "astronaut.jpg"

# label -> (mode, options). A label ending in "-warm" is scored on the second
# of two refines of the same photo (state from the first: warm start).
GRID = {"superpixels": "grid", "non_local": 0.0}
SLIC = {"superpixels": "slic", "non_local": 0.0}
VARIANTS: dict[str, tuple[str, dict]] = {
    "none": ("none", {}),
    "guided-grey": ("guided", {"color": False, "eps": 1e-4}),
    "guided": ("guided", {}),
    "guided-160": ("guided", {"long_side": 160, "radius": 1}),
    # the grid (degenerate superpixels)
    "grid": ("sss", GRID),
    "grid-warm": ("sss", GRID),
    "grid+semantic": ("sss", {**GRID, "semantic": True}),
    "grid+nonlocal": ("sss", {**GRID, "non_local": 0.05}),
    "grid+nonlocal-allnodes": ("sss", {**GRID, "non_local": 0.05, "non_local_band": 1.01}),
    "grid+nonlocal-every5-warm": ("sss", {**GRID, "non_local": 0.05,
                                          "non_local_every": 5}),
    "grid+nonlocal+semantic": ("sss", {**GRID, "non_local": 0.05, "semantic": True}),
    "grid+eigen16": ("sss", {**GRID, "eigen": 16}),
    # SLIC-like superpixels
    "slic600": ("sss", {**SLIC, "n_superpixels": 600}),
    "slic1000": ("sss", {**SLIC, "n_superpixels": 1000}),
    "slic1500": ("sss", {**SLIC, "n_superpixels": 1500}),
    "slic1500-warm": ("sss", {**SLIC, "n_superpixels": 1500}),
    "slic1500-soft": ("sss", {**SLIC, "n_superpixels": 1500, "soft_tau": 32.0}),
    "slic1500-guide320": ("sss", {**SLIC, "n_superpixels": 1500, "long_side": 320, "radius": 2}),
    "slic1500-side160": ("sss", {**SLIC, "n_superpixels": 1500, "slic_side": 160}),
    "slic1500+semantic": ("sss", {**SLIC, "n_superpixels": 1500, "semantic": True}),
    "slic1500+semantic-p-only": ("sss", {**SLIC, "n_superpixels": 1500, "semantic": True,
                                         "semantic_channels": 0}),
    "slic1500+nonlocal": ("sss", {**SLIC, "n_superpixels": 1500, "non_local": 0.05}),
    "slic1500+nonlocal-warm": ("sss", {**SLIC, "n_superpixels": 1500, "non_local": 0.05}),
    "slic1500+nonlocal+semantic": ("sss", {**SLIC, "n_superpixels": 1500, "non_local": 0.05,
                                           "semantic": True}),
    "slic1500+eigen16": ("sss", {**SLIC, "n_superpixels": 1500, "eigen": 16}),
    "slic1500+eigen16-warm": ("sss", {**SLIC, "n_superpixels": 1500, "eigen": 16}),
    "slic1500-eigen16-only": ("sss", {**SLIC, "n_superpixels": 1500, "eigen": 16,
                                      "eigen_only": True}),
    "slic1500+all": ("sss", {**SLIC, "n_superpixels": 1500, "non_local": 0.05,
                             "semantic": True, "eigen": 16}),
    "slic4000": ("sss", {**SLIC, "n_superpixels": 4000}),
    "slic4000+nonlocal": ("sss", {**SLIC, "n_superpixels": 4000, "non_local": 0.05}),
    "sss": ("sss", {}),  # the default (grid + non-local edges)
}
# grid+eigen16: the cold start (Lanczos on ~18000 nodes) takes seconds per photo
DEFAULT = [v for v in VARIANTS if v not in ("grid+eigen16",)]


def load_photos(split: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    files = sorted((DATA / "images").glob("*.jpg"))
    if split == "a":
        files = files[0::2]
    elif split == "b":
        files = files[1::2]
    out = []
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        gt = cv2.imread(str(DATA / "masks" / (f.stem + ".png")), cv2.IMREAD_GRAYSCALE)
        if img is None or gt is None:
            raise SystemExit(f"cannot read {f} or its mask")
        out.append((f.stem, img, gt))
    return out


def time_refiners(variants: list[str], frame: np.ndarray, seg, n: int) -> dict[str, list[float]]:
    """ms of refine() on one frame, as a video (warm state), for every variant.

    The variants are interleaved (one call each per round, ``n`` rounds) so
    that a busy machine slows them all alike. Returns label -> list of ms, and
    the mean sub-step timings under "<label>/steps".
    """
    refiners = {v: make_refiner(VARIANTS[v][0], **VARIANTS[v][1]) for v in variants}
    for r in refiners.values():
        for _ in range(5):
            r.refine(frame, seg.probability, seg.features)
    ts: dict[str, list] = {v: [] for v in variants}
    steps: dict[str, list] = {v: [] for v in variants}
    for _ in range(n):
        for v, r in refiners.items():
            t0 = time.perf_counter()
            r.refine(frame, seg.probability, seg.features)
            ts[v].append((time.perf_counter() - t0) * 1e3)
            steps[v].append(r.timings())
    for v in variants:
        keys = steps[v][0].keys() if steps[v] else []
        ts[v + "/steps"] = {k: float(np.median([s[k] for s in steps[v]])) for k in keys}
    return ts


def score(label: str, photos) -> tuple[np.ndarray, dict]:
    """Mean (IoU, boundary IoU, band MAE) over the photos, and warm-start diagnostics."""
    mode, opts = VARIANTS[label]
    warm = label.endswith("-warm")
    scores, changed, residual = [], [], []
    for _, img, gt, seg in photos:
        r = make_refiner(mode, **opts)  # each photo is a fresh scene
        a = r.refine(img, seg.probability, seg.features)
        if warm:  # the same frame again, from the first call's state
            a = r.refine(img, seg.probability, seg.features)
            st = getattr(r, "state", None)
            if st is not None:
                changed.append(st.changed)
                residual.append(st.residual)
        scores.append((iou(a, gt), boundary_iou(a, gt), band_mae(a, gt)))
    diag = {}
    if residual:
        diag = {"residual": float(np.nanmean(residual))}
        if np.isfinite(changed).any():
            diag["labels changed"] = float(np.nanmean(changed))
    return np.mean(scores, axis=0), diag


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=DEFAULT, choices=sorted(VARIANTS))
    ap.add_argument("--split", choices=("all", "a", "b"), default="all")
    ap.add_argument("--model", default="square")
    ap.add_argument("--timing-frames", type=int, default=60)
    ap.add_argument("--timing-only", action="store_true", help="skip the photos")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)

    net = Segmenter(args.model, features=True)
    photos = [] if args.timing_only else [(n, img, gt, net.segment(img))
                                          for n, img, gt in load_photos(args.split)]
    frame = cv2.resize(cv2.imread(str(SAMPLE)), (1280, 720), interpolation=cv2.INTER_AREA)
    frame_seg = net.segment(frame)

    print(f"{len(photos)} photos ({args.split}), {args.model} net; ms on one 1280x720 frame, "
          f"variants interleaved, {args.timing_frames} rounds\n", flush=True)
    nan = np.full(3, np.nan)
    results = {label: score(label, photos) if photos else (nan, {}) for label in args.variants}
    ts = time_refiners(args.variants, frame, frame_seg, args.timing_frames)
    print("| variant | IoU | boundary IoU | band MAE | ms p50 | ms p95 | sub-steps ms p50 | warm |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for label in args.variants:
        s, diag = results[label]
        p50, p95 = np.median(ts[label]), np.percentile(ts[label], 95)
        steps = " ".join(f"{k} {v:.2f}" for k, v in ts[label + "/steps"].items())
        warm = ", ".join(f"{k} {v:.2g}" for k, v in diag.items())
        print(f"| {label} | {s[0]:.4f} | {s[1]:.4f} | {s[2]:.4f} | {p50:.2f} | {p95:.2f} "
              f"| {steps} | {warm} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
