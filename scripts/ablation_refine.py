#!/usr/bin/env python
"""Ablation of the refinement stage on the dev photos: quality and milliseconds.

For every variant: mean IoU, boundary IoU (band of 2 % of the diagonal, Cheng
et al. 2021) and MAE inside that band over the dev photos (each refined at its
own size with scale-relative parameters), and the median / p95 milliseconds of
``refine`` on one 1280x720 frame, one OpenCV thread (numba kernels are
single-threaded).

The photos are portrait-shaped, so the square net is used (``--model``).
``--split a`` / ``--split b`` score only the even / odd photos (sorted by
name): tune on one half, check on the other.

    /work/venv/bin/python scripts/ablation_refine.py                 # the table
    /work/venv/bin/python scripts/ablation_refine.py --variants none guided sss
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from livebg.metrics import band_mae, boundary_iou, iou
from livebg.refine import make_refiner
from livebg.segment import Segmenter

DATA = Path("/work/shared/data/portraits")
SAMPLE = Path(__file__).resolve().parent.parent / "livebg" / "data" / "astronaut.jpg"

# label -> (mode, options)
VARIANTS: dict[str, tuple[str, dict]] = {
    "none": ("none", {}),
    "guided-grey": ("guided", {"color": False, "eps": 1e-4}),
    "guided": ("guided", {}),
    "guided-160": ("guided", {"long_side": 160, "radius": 1}),
    "sss": ("sss", {}),
    "sss-semantic": ("sss", {"semantic": True}),
    "sss-semantic-sf1": ("sss", {"semantic": True, "sigma_f": 1.0}),
    "sss-guide320": ("sss", {"long_side": 320, "radius": 2}),
    "sss-grey-fgf": ("sss", {"color": False, "eps": 1e-4}),
    "sss-sigma2": ("sss", {"sigma": 2.0}),
    "sss-sigma8": ("sss", {"sigma": 8.0}),
    "sss-lam0.3": ("sss", {"lam": 0.3}),
    "sss-lam3": ("sss", {"lam": 3.0}),
    "sss-gamma2": ("sss", {"gamma": 2.0}),
    "sss-10-iters": ("sss", {"iters": 10, "warm_iters": 10}),
    "sss-eps1e-4": ("sss", {"eps": 1e-4}),
    "sss-eps1e-2": ("sss", {"eps": 1e-2}),
    "sss-nodes-320": ("sss", {"node_side": 320, "long_side": 320, "radius": 2}),
}
DEFAULT = list(VARIANTS)


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


def time_refiner(mode: str, options: dict, frame: np.ndarray, seg, n: int) -> tuple[float, float]:
    """Median and p95 ms of refine() on one frame, as a video (warm state)."""
    r = make_refiner(mode, **options)
    for _ in range(5):
        r.refine(frame, seg.probability, seg.features)
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        r.refine(frame, seg.probability, seg.features)
        ts.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(ts)), float(np.percentile(ts, 95))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=DEFAULT, choices=sorted(VARIANTS))
    ap.add_argument("--split", choices=("all", "a", "b"), default="all")
    ap.add_argument("--model", default="square")
    ap.add_argument("--timing-frames", type=int, default=100)
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)

    net = Segmenter(args.model, features=True)
    photos = [(n, img, gt, net.segment(img)) for n, img, gt in load_photos(args.split)]
    frame = cv2.resize(cv2.imread(str(SAMPLE)), (1280, 720), interpolation=cv2.INTER_AREA)
    frame_seg = net.segment(frame)

    print(f"{len(photos)} photos ({args.split}), {args.model} net; ms on one 1280x720 frame\n")
    print("| variant | IoU | boundary IoU | band MAE | ms p50 | ms p95 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label in args.variants:
        mode, opts = VARIANTS[label]
        scores = []
        for _, img, gt, seg in photos:
            r = make_refiner(mode, **opts)  # each photo is a fresh scene
            a = r.refine(img, seg.probability, seg.features)
            scores.append((iou(a, gt), boundary_iou(a, gt), band_mae(a, gt)))
        s = np.mean(scores, axis=0)
        p50, p95 = time_refiner(mode, opts, frame, frame_seg, args.timing_frames)
        print(f"| {label} | {s[0]:.4f} | {s[1]:.4f} | {s[2]:.4f} | {p50:.2f} | {p95:.2f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
