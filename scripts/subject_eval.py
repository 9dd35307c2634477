"""``subject: all`` against ``main`` on crowd clips: the README's table, picture and cost.

    python scripts/subject_eval.py ../shared/data/portraits --clips 8 --out /tmp/subject
    python scripts/subject_eval.py ../shared/data/portraits --picture docs/subject.png
    python scripts/subject_eval.py ../shared/data/portraits --bench

The table: for each case of :mod:`livebg.eval.crowd` and mode, the mean IoU
against the main-person truth and against the everyone truth, the frames where
the subject filter cut the main person (see ``livebg.eval.evaluate.main_cut``)
and the most of the main person below 0.5 in any frame (the net's own misses,
equal in both modes). ``--bench`` times ``SubjectFilter.update`` alone on the
net's probabilities of a 1280x720 crowd clip.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from livebg import config
from livebg.eval.clips import load_pairs, write_clip
from livebg.eval.crowd import CASES, generate_crowd_clip, generate_crowd_clips
from livebg.eval.evaluate import evaluate
from livebg.factory import make_processor


def table(data: Path, clips: int, out: Path, refine: str) -> None:
    folder = out / "clips"
    if not folder.is_dir():
        for c in generate_crowd_clips(data, n_clips=clips, size=(640, 360), seed=1):
            write_clip(c, folder / c.name)
    rows = defaultdict(dict)
    per_frame = {}
    for mode in ("all", "main"):
        cfg = config.set_values(config.Config(), {"subject": mode, "refine.mode": refine})
        res = evaluate(folder, lambda w, h, c=cfg: make_processor(c, w, h), progress=False)
        for case in CASES:
            items = [r for r in res.items if r.get("case") == case]
            if items:
                rows[case][mode] = items
        rows["all cases"][mode] = res.items
        per_frame[mode] = np.concatenate([r["per_frame"]["iou"] for r in res.items])
    print("| case (clips) | mode | IoU, main-person truth | IoU, everyone truth | frames "
          "cutting the main person | most of the main person lost (net) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for case, modes in rows.items():
        for mode, items in modes.items():
            print(f"| {case} ({len(items)}) | `{mode}` | "
                  f"{statistics.mean(r['iou'] for r in items):.3f} | "
                  f"{statistics.mean(r['iou_all'] for r in items):.3f} | "
                  f"{sum(r['main_cut'] for r in items)} / {sum(r['frames'] for r in items)} | "
                  f"{100 * max(r['main_lost'] for r in items):.1f} % |")
    gain = per_frame["main"] - per_frame["all"]
    shows = gain > 0.02
    print(f"\nframes where `main` raised the IoU against the main-person truth by more than "
          f"0.02 (the net saw someone else there): {int(shows.sum())} of {gain.size}; on them "
          f"IoU {per_frame['all'][shows].mean():.3f} (`all`) -> "
          f"{per_frame['main'][shows].mean():.3f} (`main`); frames where `main` lowered it by "
          f"more than 0.02: {int((gain < -0.02).sum())}")


def _pair_clip(data: Path, case: str, size, n: int, i: int = 2, j: int = 30, seed: int = 3):
    pairs = load_pairs(data)
    (a, am), (b, bm) = pairs[i], pairs[j]
    bg = cv2.imread(str(Path(__file__).resolve().parent.parent / "livebg/data/scene_rocket.jpg"))
    return generate_crowd_clip(cv2.imread(str(a)), cv2.imread(str(am), 0), cv2.imread(str(b)),
                               cv2.imread(str(bm), 0), bg, case=case, size=size, n_frames=n,
                               seed=seed)


def picture(data: Path, path: Path) -> None:
    """input | subject all | subject main (blur background), frame 30 of a behind_still clip."""
    clip = _pair_clip(data, "behind_still", (640, 360), 31)
    panels = [clip.frames[30]]
    for mode in ("all", "main"):
        proc = make_processor(config.set_values(config.Config(), {"subject": mode}), 640, 360)
        for f in clip.frames:
            out = proc.process(f)
        panels.append(out)
    labels = ("input", "subject: all", "subject: main")
    small = []
    for img, text in zip(panels, labels):
        img = cv2.resize(img, (480, 270), interpolation=cv2.INTER_AREA)
        cv2.putText(img, text, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(img, text, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2,
                    cv2.LINE_AA)
        small.append(img)
    cv2.imwrite(str(path), np.hstack(small))
    print(f"wrote {path}")


def bench(data: Path) -> None:
    """Milliseconds of SubjectFilter.update per frame, on the net's output for 1280x720 frames."""
    cv2.setNumThreads(1)
    from livebg.stages.subject import SubjectFilter

    from livebg.stages.sources import SampleSource

    proc = make_processor(config.set_values(config.Config(), {"subject": "all"}), 1280, 720)
    sample = SampleSource(width=1280, height=720, count=60)
    for case in ("alone (the built-in sample)", "behind_still", "cross"):
        frames = ([sample.render(i) for i in range(60)] if case.startswith("alone")
                  else _pair_clip(data, case, (1280, 720), 60).frames)
        probs = [proc.segmenter.segment(f).probability for f in frames]  # no still gate
        f = SubjectFilter()
        f.update(probs[0])
        ms, cpu = [], []
        for _ in range(3):
            f.reset()
            for p in probs:
                t0, c0 = time.perf_counter(), time.thread_time()
                f.update(p)
                ms.append((time.perf_counter() - t0) * 1e3)
                cpu.append((time.thread_time() - c0) * 1e3)
        print(f"{case}: net output {probs[0].shape[1]}x{probs[0].shape[0]}, subject filter "
              f"{np.median(ms):.3f} ms p50, {np.percentile(ms, 95):.3f} ms p95, "
              f"{max(ms):.3f} ms max per frame (wall); CPU time {np.median(cpu):.3f} ms p50, "
              f"{np.percentile(cpu, 95):.3f} ms p95")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="photos: images/ + masks/")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path("/tmp/livebg-subject"))
    ap.add_argument("--refine", default="sss")
    ap.add_argument("--picture", type=Path)
    ap.add_argument("--bench", action="store_true")
    args = ap.parse_args(argv)
    if args.picture:
        picture(args.data, args.picture)
    elif args.bench:
        bench(args.data)
    else:
        table(args.data, args.clips, args.out, args.refine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
