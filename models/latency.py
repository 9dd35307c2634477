#!/usr/bin/env python3
"""Median ONNX Runtime CPU latency of the shipped models.

Development tool. Run from the repository root::

    python models/latency.py [--runs 200] [--threads 1]

Feeds a fixed random image (float32 NCHW in [0, 1]) after 20 warm-up runs and
prints the median and 90th percentile wall time per run in milliseconds,
both with and without fetching the ``features`` output.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort


def measure(path: Path, shape: list[int], outputs: list[str], runs: int,
            threads: int) -> tuple[float, float]:
    """(median, p90) milliseconds per ``session.run`` of the model at ``path``."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    for _ in range(20):
        sess.run(outputs, {"image": x})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(outputs, {"image": x})
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times)), float(np.percentile(times, 90))


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads")
    args = parser.parse_args(argv)
    manifest = json.loads((here / "manifest.json").read_text())
    for key, entry in manifest["models"].items():
        shape = entry["inputs"][0]["shape"]
        for outputs in (["probability"], ["probability", "features"]):
            med, p90 = measure(here / entry["onnx"]["file"], shape, outputs, args.runs,
                               args.threads)
            print(f"{key:9s} {shape[2]}x{shape[3]} outputs={','.join(outputs):22s} "
                  f"median {med:.2f} ms  p90 {p90:.2f} ms  ({args.threads} thread(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
