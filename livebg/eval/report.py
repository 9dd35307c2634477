"""The PNG report of ``livebg eval`` (needs matplotlib: ``pip install livebg[plot]``).

One page: the summary in the title; per-item scores (sorted, so the weak ones
stand out); for clips the boundary IoU of every frame over time with the
moving stretch shaded and the flicker / dtSSD of each clip; and the worst
frames as overlays (the prediction tinted, the true contour in green, the
predicted one in red).
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

INSTALL_HINT = "the PNG report needs matplotlib: pip install 'livebg[plot]'"


def available() -> bool:
    """True when matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def overlay(image: np.ndarray, gt: np.ndarray, pred: np.ndarray, *,
            max_side: int = 480) -> np.ndarray:
    """RGB uint8 picture of one frame: prediction tinted, true contour green, predicted red.

    Args:
        image: BGR uint8 (H, W, 3).
        gt, pred: (H, W) alpha, uint8 0..255 or float [0, 1].
        max_side: the picture is shrunk so that its long side is at most this.
    """
    from livebg.eval.metrics import as_alpha

    g, p = as_alpha(gt, "gt"), as_alpha(pred, "pred")
    h, w = image.shape[:2]
    s = min(1.0, max_side / max(h, w))
    size = (max(1, round(w * s)), max(1, round(h * s)))
    img = cv2.resize(image, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    g = cv2.resize(g, size, interpolation=cv2.INTER_AREA)
    p = cv2.resize(p, size, interpolation=cv2.INTER_AREA)
    tint = np.array([255, 90, 40], np.float32)  # BGR: blue-ish person tint
    out = img * (1 - 0.35 * p[..., None]) + tint * (0.35 * p[..., None])
    out = np.clip(out, 0, 255).astype(np.uint8)
    for mask, colour in ((g, (0, 220, 0)), (p, (0, 0, 255))):
        contours, _ = cv2.findContours((mask >= 0.5).astype(np.uint8), cv2.RETR_LIST,
                                       cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, colour, 1, lineType=cv2.LINE_AA)
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB)


def _fmt(v, scale=1.0, digits=3) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v * scale:.{digits}f}"


def write_report(result, path: str | Path, *, dpi: int = 100, overwrite: bool = True) -> Path:
    """Draw the report of an :class:`~livebg.eval.evaluate.EvalResult` to a PNG file
    (whole or not at all; an existing file is replaced only with ``overwrite``)."""
    import io

    import matplotlib

    from livebg.sinks.files import write_file

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    items = result.items
    worst = result.worst[:6]
    n_top = 2
    ncols = 3
    nrows_w = math.ceil(len(worst) / ncols) if worst else 0
    fig = plt.figure(figsize=(15, 4.2 + 3.6 * nrows_w), dpi=dpi)
    grid = fig.add_gridspec(1 + nrows_w, ncols * n_top, height_ratios=[1.15] + [1] * nrows_w,
                            hspace=0.35, wspace=0.6)

    fig.suptitle(_title(result), fontsize=11)
    _plot_per_item(fig, grid, result, ncols)
    if result.kind == "photos":
        _plot_band_errors(fig, grid, items, ncols)
    else:
        _plot_clip_scores(fig, grid, items)
    _plot_worst(fig, grid, worst, ncols, n_top)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    write_file(path, buf.getvalue(), overwrite=overwrite)
    return path


def _title(result) -> str:
    """The two header lines: what was scored, and the summary scores."""
    s = result.summary
    title = (f"livebg eval: {s['items']} {result.kind}, {s['frames']} frames  |  "
             f"model {result.settings.get('model', '?')}, refine "
             f"{result.settings.get('refine', '?')}, temporal "
             f"{result.settings.get('temporal', '?')}\n"
             f"IoU {_fmt(s['iou'], digits=4)}   boundary IoU {_fmt(s['boundary_iou'], digits=4)}"
             f"   MAE {_fmt(s['mae'], 100, 2)}%   band MAE {_fmt(s['band_mae'], 100, 2)}%")
    if result.kind == "clips":
        title += (f"   dtSSD {_fmt(s['dtssd'], 100, 2)}%   flicker (still) "
                  f"{_fmt(s['flicker_still'], 100, 3)}%   lag {_fmt(s['lag'], digits=2)} frames")
    title += f"   {_fmt(s['ms'], digits=1)} ms/frame"
    return title


def _plot_per_item(fig, grid, result, ncols: int) -> None:
    """IoU and boundary IoU per photo or clip, sorted by boundary IoU."""
    items = result.items
    order = sorted(range(len(items)), key=lambda i: items[i]["boundary_iou"])
    ax = fig.add_subplot(grid[0, 0:ncols] if result.kind == "photos" else grid[0, 0:2])
    x = np.arange(len(order))
    ax.plot(x, [items[i]["iou"] for i in order], "o", ms=4, label="IoU")
    ax.plot(x, [items[i]["boundary_iou"] for i in order], "s", ms=4, label="boundary IoU")
    ax.set_xlabel(f"{result.kind[:-1]} (sorted by boundary IoU)")
    ax.set_ylabel("score")
    ax.set_ylim(max(0.0, min([items[i]["boundary_iou"] for i in order] + [1.0]) - 0.05), 1.0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    if len(order) <= 12:
        ax.set_xticks(x, [items[i]["name"][:14] for i in order], rotation=30, ha="right",
                      fontsize=7)
    ax.set_title("per item")


def _plot_band_errors(fig, grid, items, ncols: int) -> None:
    """Photos: a histogram of the MAE in the boundary band."""
    band_histogram(fig.add_subplot(grid[0, ncols:]), items)


def band_histogram(ax, items: list[dict]) -> None:
    """Histogram of the photos' boundary-band MAE (%) on ``ax``; counts on whole-number ticks."""
    from matplotlib.ticker import MaxNLocator

    ax.hist([r["band_mae"] * 100 for r in items if r["band_mae"] is not None
             and math.isfinite(r["band_mae"])], bins=20, color="tab:purple", alpha=0.8)
    ax.set_xlabel("MAE in the boundary band (%)")
    ax.set_ylabel("photos")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("boundary error")
    ax.grid(alpha=0.3)


def _plot_clip_scores(fig, grid, items) -> None:
    """Clips: boundary IoU over time, and flicker / dtSSD per clip."""
    ax = fig.add_subplot(grid[0, 2:4])
    for r in items:
        ax.plot(r["per_frame"]["boundary_iou"], lw=1, alpha=0.8)
    moving = items[0].get("moving") if items else None
    if moving:
        idx = np.nonzero(moving)[0]
        if idx.size:
            ax.axvspan(idx.min() - 0.5, idx.max() + 0.5, color="0.85", zorder=0,
                       label="moving")
            ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("frame")
    ax.set_ylabel("boundary IoU")
    ax.set_title("boundary IoU over time, one line per clip")
    ax.grid(alpha=0.3)

    ax = fig.add_subplot(grid[0, 4:6])
    names = [r["name"][:14] for r in items]
    xs = np.arange(len(items))
    fl = [np.nan if r["flicker_still"] is None else r["flicker_still"] * 100 for r in items]
    dt = [np.nan if r["dtssd"] is None else r["dtssd"] * 100 for r in items]
    ax.bar(xs - 0.2, fl, 0.4, label="flicker, still (%)", color="tab:red")
    ax2 = ax.twinx()
    ax2.bar(xs + 0.2, dt, 0.4, label="dtSSD (%)", color="tab:blue")
    ax.set_ylabel("flicker on still stretches (%)", color="tab:red")
    ax2.set_ylabel("dtSSD (%)", color="tab:blue")
    ax.set_xticks(xs, names, rotation=30, ha="right", fontsize=7)
    ax.set_title("temporal scores per clip")

def _plot_worst(fig, grid, worst, ncols: int, n_top: int) -> None:
    """The worst frames as overlays of truth and prediction."""
    for k, case in enumerate(worst):
        r, c = divmod(k, ncols)
        ax = fig.add_subplot(grid[1 + r, c * n_top:(c + 1) * n_top])
        ax.imshow(overlay(case.image, case.gt, case.pred))
        ax.set_title(f"{case.name}: boundary IoU {case.score:.3f}", fontsize=9)
        ax.axis("off")
    if worst:
        fig.text(0.5, 0.005, f"worst {len(worst)} frames by boundary IoU: green = truth, "
                 "red = prediction (alpha 0.5), blue tint = predicted alpha",
                 ha="center", fontsize=9)
