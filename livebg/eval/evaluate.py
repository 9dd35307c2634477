"""``livebg eval``: score the pipeline's mattes against ground truth.

A dataset folder is either

* photos: ``images/NAME.{jpg,png}`` with ``masks/NAME.png`` (255 = person), or
* clips: one folder per clip, ``CLIP/frames/*.png`` with ``CLIP/masks/*.png``
  (as written by :func:`livebg.eval.clips.write_clip`; ``meta.json``, when present,
  gives the frames where the person moves, else they are found from the masks);
* ``sample`` (when no such folder exists): the built-in sample clip against its
  true alpha (:func:`livebg.eval.clips.sample_clip`).

Photos are independent: the processor is reset before each. A clip runs
through the live path: one :class:`~livebg.processor.Processor`, reset at the
clip's start, ``processor.alpha(frame)`` frame after frame, so the
refinement's warm start and the temporal stage carry their state exactly as
in the daemon.

Scores (alpha units, fractions in [0, 1]; see :mod:`livebg.eval.metrics`): IoU,
boundary IoU, MAE and MAE in the boundary band per frame; for clips also
dtSSD, flicker (mean alpha change on pixels known to be still, all frame
pairs), flicker on the still stretches only, lag (frames the mask trails
the truth on the moving stretch) and ghost (share of the true background away
from the person with alpha > 0.1, :func:`livebg.eval.metrics.ghost`: mean and
worst frame after the first ten, when the temporal stage is still settling).
"""

from __future__ import annotations

import heapq
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from livebg.eval import metrics
from livebg.eval.clips import SAMPLE_FRAMES, Clip, load_pairs, read_clip, sample_clip

log = logging.getLogger(__name__)

_FRAME_KEYS = ("iou", "boundary_iou", "mae", "band_mae")
_CLIP_KEYS = ("dtssd", "flicker", "flicker_still", "lag", "moving_iou", "moving_boundary_iou",
              "ghost", "ghost_max", "ghost_all")
_GHOST_SETTLE = 10  # ghost_max leaves out the first frames of a clip, as the bar does
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


SAMPLE = "sample"  # DATA naming the built-in sample clip


class DatasetError(ValueError):
    """The data folder is neither a photo set nor a folder of clips."""


@dataclass(order=True)
class Case:
    """One frame kept for the report's worst cases (lowest boundary IoU first)."""

    score: float
    name: str = field(compare=False)
    image: np.ndarray = field(compare=False, repr=False)
    gt: np.ndarray = field(compare=False, repr=False)
    pred: np.ndarray = field(compare=False, repr=False)


@dataclass
class EvalResult:
    """What :func:`evaluate` found.

    Attributes:
        kind: ``photos`` or ``clips``.
        items: one dict per photo or clip: ``name``, ``frames``, the scores and
            ``ms`` (median milliseconds of ``processor.alpha`` per frame); clips
            also carry ``per_frame`` (lists of IoU and boundary IoU) and
            ``moving`` (flags).
        summary: the mean of every score over the items (NaN ignored).
        worst: the worst frames (lowest boundary IoU), for the report.
        settings: model, refinement and temporal mode used.
    """

    kind: str
    data: str
    items: list[dict]
    summary: dict
    worst: list[Case]
    settings: dict

    def to_json(self) -> dict:
        def clean(v):
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, list):
                return [clean(x) for x in v]
            return v

        return clean({"kind": self.kind, "data": self.data, "settings": self.settings,
                      "summary": self.summary, "items": self.items,
                      "worst": [{"name": c.name, "boundary_iou": c.score} for c in self.worst]})


def find_dataset(data: str | Path) -> tuple[str, list]:
    """(``photos``, [(image, mask), ...]) or (``clips``, [clip folder, ...]).

    Raises:
        DatasetError: neither layout found.
    """
    root = Path(data)
    if str(data) == SAMPLE and not root.exists():
        return "clips", [SAMPLE]
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder (or `sample` for the built-in sample)")
    if (root / "images").is_dir() and (root / "masks").is_dir():
        pairs = load_pairs(root)
        if not pairs:
            raise DatasetError(f"{root}: images/ and masks/ hold no matching pairs")
        return "photos", pairs
    clips = sorted(d for d in root.iterdir()
                   if (d / "frames").is_dir() and (d / "masks").is_dir())
    if (root / "frames").is_dir() and (root / "masks").is_dir():
        clips = [root]  # DATA is itself one clip
    if not clips:
        raise DatasetError(f"{root}: expected images/ + masks/ (photos) or clip folders with "
                           "frames/ + masks/ (make some with `livebg clips`)")
    return "clips", clips


def load_clip(directory: Path | str) -> Clip:
    """A clip folder as a :class:`Clip`; without ``meta.json`` the moving flags come from
    the masks (a frame moves when its mask differs from the previous one).
    :data:`SAMPLE` gives the built-in sample at 1280x720."""
    if directory == SAMPLE:
        return sample_clip()
    if (directory / "meta.json").is_file():
        return read_clip(directory)
    frames_dir, masks_dir = directory / "frames", directory / "masks"
    names = sorted(p for p in frames_dir.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
    frames, masks = [], []
    for p in names:
        m_path = masks_dir / f"{p.stem}.png"
        f = cv2.imread(str(p), cv2.IMREAD_COLOR)
        m = cv2.imread(str(m_path), cv2.IMREAD_GRAYSCALE)
        if f is None or m is None:
            raise DatasetError(f"{directory}: cannot read {p.name} or masks/{m_path.name}")
        frames.append(f)
        masks.append(m.astype(np.float32) / 255.0)
    if not frames:
        raise DatasetError(f"{frames_dir}: no frames")
    moving = [False] + [bool(np.any(np.abs(masks[t] - masks[t - 1]) > 1.5 / 255))
                        for t in range(1, len(masks))]
    clip = Clip(frames=frames, masks=masks, moving=moving, name=directory.name)
    clip.params["stems"] = [p.stem for p in names]
    return clip


def _frame_stems(clip: Clip) -> list[str]:
    return clip.params.get("stems") or [f"{t:05d}" for t in range(len(clip))]


def _alpha8(alpha: np.ndarray) -> np.ndarray:
    return (np.clip(alpha, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    m = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if m is None:
        raise DatasetError(f"cannot read mask {path}")
    if m.shape != shape:
        raise DatasetError(f"{path}: mask {m.shape[1]}x{m.shape[0]} differs from its image "
                           f"{shape[1]}x{shape[0]}")
    return m


def _progress(total: int, desc: str, enabled: bool):
    """A tqdm bar on stderr (silent when ``enabled`` is false)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", disable=not enabled, leave=False,
                dynamic_ncols=True)


def _median(values) -> float:
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else math.nan


def _mean(values) -> float:
    v = np.array([x for x in values if x is not None], dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan


class _Worst:
    """The k frames with the lowest boundary IoU seen so far (bounded memory)."""

    def __init__(self, k: int):
        self.k = k
        self._heap: list[tuple[float, int, Case]] = []  # max-heap on score via negation
        self._n = 0

    def offer(self, score: float, name: str, image, gt, pred) -> None:
        if self.k <= 0:
            return
        self._n += 1
        if len(self._heap) < self.k:
            heapq.heappush(self._heap, (-score, self._n, Case(score, name, image, gt, pred)))
        elif -self._heap[0][0] > score:
            heapq.heapreplace(self._heap, (-score, self._n, Case(score, name, image, gt, pred)))

    def cases(self) -> list[Case]:
        return sorted(c for _, _, c in self._heap)


def evaluate(data: str | Path, make_processor: Callable[[int, int], object], *,
             limit: int | None = None, save_alpha: str | Path | None = None,
             worst: int = 6, progress: bool = True, settings: dict | None = None) -> EvalResult:
    """Run the pipeline on a dataset and score it.

    Args:
        data: dataset folder (photos or clips, see the module doc).
        make_processor: ``(width, height) -> Processor``; called once per frame
            size (processors are reused, and reset before every photo and clip).
        limit: at most this many photos or clips (the first ones by name).
        save_alpha: folder for every predicted alpha as an 8-bit PNG
            (``NAME.png`` for photos, ``CLIP/FRAME.png`` for clips).
        worst: how many worst frames to keep for the report.
        progress: show a progress bar on stderr.
        settings: recorded as is in the result (model, refinement, temporal).
    """
    kind, items = find_dataset(data)
    if limit is not None:
        items = items[:max(0, int(limit))]
    out = Path(save_alpha) if save_alpha is not None else None
    processors: dict[tuple[int, int], object] = {}

    def processor_for(image: np.ndarray):
        h, w = image.shape[:2]
        if (w, h) not in processors:
            processors[(w, h)] = make_processor(w, h)
        proc = processors[(w, h)]
        proc.reset()
        return proc

    keep = _Worst(worst)
    rows: list[dict] = []
    if kind == "photos":
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
        with _progress(len(items), "photos", progress) as bar:
            for img_path, mask_path in items:
                image = cv2.imread(str(img_path), cv2.IMREAD_COLOR)
                if image is None:
                    raise DatasetError(f"cannot read image {img_path}")
                gt = _read_mask(mask_path, image.shape[:2])
                proc = processor_for(image)
                t0 = time.perf_counter()
                alpha = proc.alpha(image)
                ms = (time.perf_counter() - t0) * 1e3
                s = metrics.score_frame(alpha, gt)
                rows.append({"name": img_path.stem, "frames": 1,
                             **{k: getattr(s, k) for k in _FRAME_KEYS}, "ms": ms})
                keep.offer(s.boundary_iou, img_path.stem, image, gt, _alpha8(alpha))
                if out is not None:
                    cv2.imwrite(str(out / f"{img_path.stem}.png"), _alpha8(alpha))
                bar.update(1)
    else:
        total = sum(SAMPLE_FRAMES if d == SAMPLE else len(list((d / "masks").glob("*.png")))
                    for d in items)
        with _progress(total, "clips", progress) as bar:
            for d in items:
                clip = load_clip(d)
                rows.append(_run_clip(clip, processor_for(clip.frames[0]), keep, out, bar))
    keys = _FRAME_KEYS + (_CLIP_KEYS if kind == "clips" else ()) + ("ms",)
    if any("iou_all" in r for r in rows):
        keys += ("iou_all", "main_lost")
    summary = {k: _mean(r.get(k) for r in rows) for k in keys}
    if any("main_cut" in r for r in rows):
        summary["main_cut"] = int(sum(r.get("main_cut", 0) for r in rows))
        summary["main_lost"] = max(r.get("main_lost", 0.0) for r in rows)
    # the median: the first frame pays for loading and compiling (seconds with numba)
    summary["ms"] = float(np.median([r["ms"] for r in rows])) if rows else math.nan
    summary["items"] = len(rows)
    summary["frames"] = int(sum(r["frames"] for r in rows))
    temporal_ms = [p.stats.summary().get("temporal", {}).get("p50") for p in processors.values()]
    summary["ms_temporal"] = _mean(temporal_ms)
    return EvalResult(kind=kind, data=str(data), items=rows, summary=summary,
                      worst=keep.cases(), settings=dict(settings or {}))


def _run_clip(clip: Clip, proc, keep: _Worst, out: Path | None, bar) -> dict:
    """One clip through the live path; its row of scores."""
    stems = _frame_stems(clip)
    if out is not None:
        (out / clip.name).mkdir(parents=True, exist_ok=True)
    preds, per_iou, per_biou, per_ghost, ms = [], [], [], [], []
    ghost_all = []
    worst_score, worst_t = math.inf, 0
    found = []  # crowd clips: where the subject filter dropped what the net found
    for t, image in enumerate(clip.frames):
        t0 = time.perf_counter()
        seg = proc.segment(image)
        alpha = proc.matte(image, seg)  # = proc.alpha(image), keeping the net's output
        ms.append((time.perf_counter() - t0) * 1e3)
        if clip.masks_all is not None:
            prob = getattr(seg, "probability", None)  # None: a still frame, its alpha reused
            found.append(_dropped(proc, prob, image.shape[:2]) if prob is not None
                         else (found[-1] if found else None))
        a8 = _alpha8(alpha)
        preds.append(a8)
        if out is not None:
            cv2.imwrite(str(out / clip.name / f"{stems[t]}.png"), a8)
        bar.update(1)
    scores = metrics.score_clip(preds, clip.masks, clip.moving, still=clip.still_masks())
    for t, (p, g) in enumerate(zip(preds, clip.masks)):
        b = metrics.boundary_iou(p, g)
        per_iou.append(metrics.iou(p, g))
        per_biou.append(b)
        per_ghost.append(metrics.ghost(p, g))
        ghost_all.append(metrics.ghost(p, g, dilation_ratio=0.0))
        if b < worst_score:
            worst_score, worst_t = b, t
    still_only = [m if not clip.moving[t + 1] else np.zeros_like(m)
                  for t, m in enumerate(clip.still_masks())]
    keep.offer(worst_score, f"{clip.name}/{stems[worst_t]}", clip.frames[worst_t],
               _alpha8(clip.masks[worst_t]), preds[worst_t])
    crowd = _crowd_scores(clip, preds, found) if clip.masks_all is not None else {}
    return {
        **crowd,
        "name": clip.name,
        "frames": len(clip),
        **{k: getattr(scores.all_frames, k) for k in _FRAME_KEYS},
        "dtssd": scores.dtssd,
        "flicker": scores.flicker,
        "flicker_still": metrics.flicker(preds, still=still_only),
        "lag": scores.lag,
        "moving_iou": scores.moving_frames.iou,
        "moving_boundary_iou": scores.moving_frames.boundary_iou,
        "ghost": _mean(per_ghost),
        "ghost_max": max((v for v in per_ghost[_GHOST_SETTLE:] if math.isfinite(v)),
                         default=math.nan),
        "ghost_all": _mean(ghost_all),
        "ms": float(np.median(ms)),
        "per_frame": {"iou": per_iou, "boundary_iou": per_biou, "ghost": per_ghost},
        "moving": [bool(m) for m in clip.moving],
    }


MAIN_CUT_FRACTION = 0.002
"""A frame "cuts the main person" when the subject filter drops more than this fraction of
the main person's pixels (0.2 %: about a fingertip) that the net found."""


def _dropped(proc, probability: np.ndarray, shape: tuple[int, int]) -> np.ndarray | None:
    """bool (H, W): where the net said person (> 0.5) and the subject filter took it away.

    None when the processor has no subject filter (``subject: all``) or it faded nothing.
    """
    weight = getattr(getattr(getattr(proc, "subject", None), "state", None), "weight", None)
    if weight is None:
        return None
    h, w = shape
    net = cv2.resize(probability, (w, h), interpolation=cv2.INTER_LINEAR)
    kept = cv2.resize(probability * weight, (w, h), interpolation=cv2.INTER_LINEAR)
    return (net > 0.5) & (kept <= 0.5)


def main_lost(pred8: np.ndarray, main_truth: np.ndarray) -> float:
    """Fraction of the main person (truth > 0.5) that ``pred8`` (uint8 alpha) puts below 0.5."""
    person = main_truth > 0.5
    n = int(person.sum())
    return float(np.count_nonzero(pred8[person] < 128)) / n if n else 0.0


def _crowd_scores(clip: Clip, preds: list[np.ndarray], dropped: list) -> dict:
    """Scores against both truths of a crowd clip (:mod:`livebg.eval.crowd`).

    ``iou`` and the other standard scores are against ``masks`` (the main person
    only); this adds ``iou_all`` (against everyone), ``main_lost`` (the largest
    fraction of the main person below 0.5 in any frame: the net's and the
    refiner's misses, the same in both modes, plus any cut) and ``main_cut``
    (frames where the subject filter dropped more than
    :data:`MAIN_CUT_FRACTION` of the main person; 0 for ``subject: all``).
    """
    lost = [main_lost(p, g) for p, g in zip(preds, clip.masks)]
    cut = [0.0 if d is None else float(np.count_nonzero(d & (g > 0.5))) / max(1, int((g > 0.5).sum()))
           for d, g in zip(dropped, clip.masks)]
    return {"case": clip.params.get("case", ""),
            "iou_all": _mean(metrics.iou(p, g) for p, g in zip(preds, clip.masks_all)),
            "main_lost": max(lost), "main_cut_max": max(cut),
            "main_cut": int(sum(v > MAIN_CUT_FRACTION for v in cut))}


# --------------------------------------------------------------------------- output

_COLUMNS = {  # key: (header, format, scale)
    "iou": ("IoU", "{:.4f}", 1), "boundary_iou": ("bIoU", "{:.4f}", 1),
    "mae": ("MAE%", "{:.2f}", 100), "band_mae": ("bandMAE%", "{:.2f}", 100),
    "dtssd": ("dtSSD%", "{:.2f}", 100), "flicker": ("flick%", "{:.3f}", 100),
    "flicker_still": ("flickStill%", "{:.3f}", 100), "lag": ("lag", "{:.2f}", 1),
    "moving_boundary_iou": ("bIoU-mov", "{:.4f}", 1), "ghost": ("ghost%", "{:.2f}", 100),
    "ghost_max": ("ghostMax%", "{:.2f}", 100), "ms": ("ms", "{:.1f}", 1),
    "iou_all": ("IoU-all", "{:.4f}", 1), "main_lost": ("lost%", "{:.2f}", 100),
    "main_cut": ("cut", "{:.0f}", 1),
}


def format_table(result: EvalResult, *, max_rows: int | None = None) -> str:
    """Per-item rows and a mean row, plain text; MAE, dtSSD and flicker shown x100.

    ``max_rows``: show only the worst rows by boundary IoU (all when None).
    """
    keys = [k for k in _COLUMNS if k in result.summary]
    rows = result.items
    if max_rows is not None and len(rows) > max_rows:
        rows = sorted(rows, key=lambda r: r["boundary_iou"])[:max_rows]
    width = max([len(r["name"]) for r in rows] + [len("median"), 8])

    def cell(k, v):
        fmt, scale = _COLUMNS[k][1], _COLUMNS[k][2]
        text = "-" if v is None or not math.isfinite(v) else fmt.format(v * scale)
        return text.rjust(max(len(_COLUMNS[k][0]), 7))

    head = "name".ljust(width) + " " + " ".join(
        _COLUMNS[k][0].rjust(max(len(_COLUMNS[k][0]), 7)) for k in keys)
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(r["name"].ljust(width) + " " + " ".join(cell(k, r.get(k)) for k in keys))
    lines.append("-" * len(head))
    # ms: the mean would be the first item's compile time spread over all; a median only
    lines.append("mean".ljust(width) + " " + " ".join(
        cell(k, None if k == "ms" else result.summary[k]) for k in keys))
    lines.append("median".ljust(width) + " " + " ".join(
        cell(k, result.summary[k] if k == "ms" else _median(r.get(k) for r in result.items))
        for k in keys))
    s = result.settings
    lines.append(f"{result.summary['items']} {result.kind}, {result.summary['frames']} frames; "
                 f"model {s.get('model', '?')}, refine {s.get('refine', '?')}, "
                 f"temporal {s.get('temporal', '?')}"
                 + (f" ({result.summary['ms_temporal']:.2f} ms/frame)"
                    if math.isfinite(result.summary.get("ms_temporal", math.nan)) else "")
                 + f", subject {s.get('subject', '?')}")
    if max_rows is not None and len(result.items) > max_rows:
        lines.append(f"(the {max_rows} worst of {len(result.items)} by boundary IoU; "
                     "all of them are in the JSON)")
    return "\n".join(lines)


def write_json(result: EvalResult, path: str | Path, *, overwrite: bool = True) -> Path:
    """The result as JSON at ``path`` (whole or not at all; an existing file is replaced
    only with ``overwrite``)."""
    from livebg.sinks.files import write_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path, json.dumps(result.to_json(), indent=1).encode(), overwrite=overwrite)
    return path



def main(cfg, data: str | Path, *, out: str | Path = "livebg-eval", limit: int | None = None,
         save_alpha: str | Path | None = None, progress: bool = True,
         overwrite: bool = False) -> int:
    """``livebg eval``: evaluate with the configured pipeline, print the table, write
    ``OUT/eval.json`` and (with matplotlib, ``livebg[plot]``) ``OUT/eval.png``; existing
    files are replaced only with ``overwrite`` (SinkError otherwise)."""
    from livebg.factory import make_processor
    from livebg.stages.segment import pick_model

    settings = {"model": cfg.model.name, "refine": cfg.refine.mode,
                "temporal": cfg.temporal.mode, "subject": cfg.subject}
    models: set[str] = set()

    def factory(w: int, h: int):
        models.add(pick_model(cfg.model.name, w, h))
        return make_processor(cfg, w, h)

    result = evaluate(data, factory, limit=limit, save_alpha=save_alpha, progress=progress,
                      settings=settings)
    if models:
        result.settings["model"] = ", ".join(sorted(models))
    print(format_table(result, max_rows=None if result.kind == "clips" else 20))
    out = Path(out)
    print(f"json:   {write_json(result, out / 'eval.json', overwrite=overwrite)}")
    from livebg.eval import report

    if report.available():
        print(f"report: {report.write_report(result, out / 'eval.png', overwrite=overwrite)}")
    else:
        print(f"report: skipped: {report.INSTALL_HINT}")
    if save_alpha is not None:
        print(f"alphas: {save_alpha}")
    return 0
