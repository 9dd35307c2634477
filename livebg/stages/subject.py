"""The main person only: ``subject: main`` keeps the person the camera is on.

Every person-segmentation net shows everyone in the frame. With ``subject:
main`` the :class:`SubjectFilter` works on the net's probability at the net's
own resolution (e.g. 256x144), between the temporal stage's first step and
the refiner, and fades out the people who are not the user:

1. The probability is thresholded at 0.5 and split into connected blobs
   (8-connected).
2. Blobs are tracked from frame to frame: each blob takes the track whose
   previous mask, grown by ``match_px``, covers most of its pixels.
   A blob that reaches both the main track and another one (a passer-by who
   touches or crosses the user) is split pixel by pixel: a pixel goes to the
   other track only where it is nearer to that track's previous mask and more
   than ``main_margin_px`` away from the main person's previous mask and was
   not theirs in the last ``recent_frames``, so the main person's own pixels
   always stay theirs.
3. The main track is chosen when there is none (the first frame, or the user
   left): the blob with the largest ``area * centrality * nearness`` (near:
   touching the bottom edge, as a webcam's user does). A new blob close to
   the main person (``near_px``) is part of them (a hand, a shoulder split off
   by a thin gap).
4. Another track that is large (``companion_area`` of the main person's area
   or more) and near (reaches the bottom ``companion_bottom`` of the frame)
   for ``companion_frames`` frames in a row becomes a companion and is kept
   (two people sharing a camera); it goes back after as many frames away.
   While it is large and near but not yet a companion, its weight is held.
5. Weights: the main person 1 at once (never cut); companions fade in, others
   fade out by ``1 / fade_frames`` per frame (no pop). Tracks that appear
   after the first frame start at 0, so a passer-by entering the frame is
   never shown. Pixels off every blob take the lowest weight within
   ``halo_px``, so the soft edge around a faded person fades with them;
   but those within ``keep_px`` of the main person's mask have weight 1: that
   soft edge is the main person's own (the weights are resized bilinearly,
   and a passer-by a few pixels away used to cut it). The probability is
   multiplied by the weights.

All state lives in one :class:`SubjectState`; :meth:`SubjectFilter.reset`
forgets it (new camera, new clip, scene cut).

Cost: the per-pixel work is numba kernels over the blobs' boxes on the
working grid (no full-frame float temporaries; distance transforms only in
the rare frames that need one); the weights are made and applied only around
the faded people. On the shared 2-core test machine at a load average of
14-15 (2 Dec 2026, ``scripts/subject_cost.py``, 1280x720 frames, net 256x144):
0.17-0.19 ms p50 with one person, 0.18-0.45 ms p50 with two, CPU-time p95
0.36-0.91 ms; the same output, bit for bit, as the numpy version before it
(0.54-1.15 ms p50 in the same runs). ``keep_px`` added nothing measurable
(0.14-0.41 ms p50 against 0.14-0.39 in one interleaved run).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from numba import njit

MODES = ("all", "main")
# Track ids only grow (a speck of haze that lasts a frame takes one); when the
# next one reaches this, the tracks are renumbered 1..k in their order, so that
# the arrays indexed by track id stay small (order kept: the same results).
COMPACT_AT = 256

# ------------------------------------------------------------------ kernels
# Compiled loops over the 128x72 grid: each replaces several numpy passes (and,
# for the per-blob work, a Python loop over blobs), which at this size cost
# more in call overhead than in arithmetic. Blob boxes are (x0, y0, x1, y1),
# x1 and y1 exclusive.


@njit(cache=True, nogil=True, inline="always")
def _label_stats(labels, m):
    """Per label 1..m-1 of ``labels`` (int32 (h, w), 0: none): area in pixels, sum of
    its pixels' columns, and box (x0, y0, x1, y1); int64 (m,), (m,), (m, 4). One
    pass along runs of a label."""
    h, w = labels.shape
    area, xsum, box = np.zeros(m, np.int64), np.zeros(m, np.int64), np.zeros((m, 4), np.int64)
    box[:, 0] = w
    box[:, 1] = h
    for y in range(h):
        row = labels[y]
        x = 0
        while x < w:
            t, x0 = row[x], x
            while x < w and row[x] == t:
                x += 1
            if t == 0:
                continue
            area[t] += x - x0
            xsum[t] += (x0 + x - 1) * (x - x0) // 2
            box[t, 0] = min(box[t, 0], x0)
            box[t, 1] = min(box[t, 1], y)
            box[t, 2] = max(box[t, 2], x)
            box[t, 3] = y + 1
    return area, xsum, box


@njit(cache=True, nogil=True)
def _blobs(comp, n, min_area):
    """Drop blobs under ``min_area`` pixels from ``comp`` (in place) and their boxes.

    comp: int32 (h, w) labels 0..n-1 (0: no blob), contiguous; kept blobs are
    renumbered 1..k in their order. Returns (k + 1, int64 (k + 1, 4) boxes; row
    0 unused). One pass along runs of a label (``_label_stats``); a second only
    when some go.
    """
    area, _, box = _label_stats(comp, n)
    new = np.zeros(n, np.int32)
    kept = np.zeros((n, 4), np.int64)
    k = 0
    for c in range(1, n):
        if area[c] >= min_area:
            k += 1
            new[c] = k
            kept[k] = box[c]
    if k < n - 1:
        flat = comp.reshape(-1)
        for i in range(flat.size):
            flat[i] = new[flat[i]]
    return k + 1, kept[:k + 1]


@njit(cache=True, nogil=True)
def _overlaps(comp, labels, tid):
    """True when some blob pixel of ``comp`` was track ``tid``'s in ``labels``."""
    h, w = comp.shape
    for y in range(h):
        for x in range(w):
            if comp[y, x] > 0 and labels[y, x] == tid:
                return True
    return False


@njit(cache=True, nogil=True)
def _grown(prev, n, box, r, out):
    """``out`` = the largest of ``prev`` over the (2r + 1)-pixel square around each pixel
    (cv2.dilate's result), on the blobs' boxes only (elsewhere ``out`` is left alone).

    prev: int32 (h, w) previous track ids (0: none); box: int64 (n, 4) boxes.
    Rows first, then columns; each step writes into another buffer, as an
    in-place maximum over a row does not vectorise.
    """
    h, w = prev.shape
    for c in range(1, n):
        x0, y0, x1, y1 = box[c, 0], box[c, 1], box[c, 2], box[c, 3]
        bw, ry0, ry1 = x1 - x0, max(0, y0 - r), min(h, y1 + r)
        pad = np.full(bw + 2 * r, -1, np.int32)  # -1 beyond the frame: never the largest
        rows = np.empty((ry1 - ry0, bw), np.int32)
        a, b = np.empty(bw, np.int32), np.empty(bw, np.int32)
        for y in range(ry0, ry1):
            lo, hi = max(0, x0 - r), min(w, x1 + r)
            pad[lo - x0 + r:hi - x0 + r] = prev[y, lo:hi]
            a[:] = pad[:bw]
            for d in range(1, 2 * r + 1):
                src = pad[d:d + bw]
                for k in range(bw):
                    u, v = a[k], src[k]
                    b[k] = u if u > v else v
                a, b = b, a
            rows[y - ry0] = a
            pad[:] = -1
        for y in range(y0, y1):
            a[:] = rows[max(0, y - r) - ry0]
            for yy in range(max(0, y - r) + 1, min(h, y + r + 1)):
                src = rows[yy - ry0]
                for k in range(bw):
                    u, v = a[k], src[k]
                    b[k] = u if u > v else v
                a, b = b, a
            out[y, x0:x1] = a


@njit(cache=True, nogil=True)
def _votes(comp, n, box, near_id, ids, main_last, recent_frames, main):
    """Which previous track each blob continues, and which blobs are the main person's.

    near_id: int32 (h, w) previous track id grown by ``match_px`` (0: none),
    all below ``ids``. main_last: uint16 (h, w) frames since each pixel was the
    main person's (recent_frames -1: none is recent). Returns int32 (n,) the
    track most of each blob's pixels vote for (the lowest id among equals; 0:
    no votes), bool (n,) the blobs to split (see :func:`_write`: they voted for
    ``main``, or some of their pixels were ``main``'s at most ``recent_frames``
    ago), and how many blobs had no votes.
    """
    votes = np.zeros(ids, np.int64)
    best, split = np.zeros(n, np.int32), np.zeros(n, np.bool_)
    zero = 0
    for c in range(1, n):
        recent = False
        for y in range(box[c, 1], box[c, 3]):
            for x in range(box[c, 0], box[c, 2]):
                if comp[y, x] == c:
                    votes[near_id[y, x]] += 1
                    if main_last[y, x] <= recent_frames:
                        recent = True
        votes[0] = 0
        top = total = 0
        for y in range(box[c, 1], box[c, 3]):  # read the touched ids, then clear them
            for x in range(box[c, 0], box[c, 2]):
                if comp[y, x] != c:
                    continue
                t = near_id[y, x]
                v = votes[t]
                if v > 0:
                    total += v
                    if v > top or (v == top and t < best[c]):
                        top, best[c] = v, t
                    if t == main:
                        split[c] = True
                    votes[t] = 0
        if total == 0:
            zero += 1
        elif recent and main:
            split[c] = True
    return best, split, zero


@njit(cache=True, nogil=True)
def _blob_min(comp, n, dist, labels, tid):
    """Per blob: the least ``dist`` on its pixels (those of track ``tid`` only, when tid > 0).

    Returns float64 (n,) (inf for a blob without such pixels).
    """
    out = np.full(n, np.inf)
    h, w = comp.shape
    for y in range(h):
        for x in range(w):
            c = comp[y, x]
            if c > 0 and (tid == 0 or labels[y, x] == tid) and dist[y, x] < out[c]:
                out[c] = dist[y, x]
    return out


@njit(cache=True, nogil=True)
def _write(comp, n, box, ident, split, near_id, main_last, recent_frames, main, out):
    """Track id per pixel of each blob into ``out`` (zeros elsewhere): ``ident[c]`` on blob
    c, or for a blob with ``split[c]`` the main person's, except a pixel near another
    previous track (``near_id``) that was not theirs in the last ``recent_frames``:
    that one gets minus that track's id, for :func:`_resolve`. Returns how many did.
    """
    tid, k = np.int32(main), 0
    for c in range(1, n):
        for y in range(box[c, 1], box[c, 3]):
            for x in range(box[c, 0], box[c, 2]):
                if comp[y, x] != c:
                    continue
                if not split[c]:
                    out[y, x] = ident[c]
                    continue
                t = near_id[y, x]
                if t > 0 and t != tid and main_last[y, x] > recent_frames:
                    out[y, x] = -t
                    k += 1
                else:
                    out[y, x] = tid
    return k


@njit(cache=True, nogil=True)
def _resolve(comp, n, box, split, main_dist, margin, main, out):
    """The pixels :func:`_write` left open go to the other track if more than ``margin`` from
    the main person's previous mask (``main_dist``), else stay the main person's."""
    for c in range(1, n):
        if not split[c]:
            continue
        for y in range(box[c, 1], box[c, 3]):
            for x in range(box[c, 0], box[c, 2]):
                if comp[y, x] == c and out[y, x] < 0:
                    out[y, x] = -out[y, x] if main_dist[y, x] > margin else main


@njit(cache=True, nogil=True)
def _resolve_near(comp, n, box, split, prev, main, side, corner, out):
    """:func:`_resolve` for a margin below two chamfer steps: a pixel is within it of the
    main person's previous mask (``prev == main``) exactly when it is on it, or has
    it as a side neighbour (``side``: a side step is within the margin) or as a
    corner neighbour (``corner``: likewise a diagonal step). No distance map."""
    h, w = prev.shape
    for c in range(1, n):
        if not split[c]:
            continue
        for y in range(box[c, 1], box[c, 3]):
            for x in range(box[c, 0], box[c, 2]):
                if comp[y, x] != c or out[y, x] >= 0:
                    continue
                near = prev[y, x] == main
                for dy in range(-1, 2):
                    for dx in range(-1, 2):
                        yy, xx = y + dy, x + dx
                        if near or not (0 <= yy < h and 0 <= xx < w) or (dy == 0 and dx == 0):
                            continue
                        if (side if dy == 0 or dx == 0 else corner) and prev[yy, xx] == main:
                            near = True
                out[y, x] = main if near else -out[y, x]


@njit(cache=True, nogil=True)
def _holding(comp, n, box, labels, tid, age, core_frames):
    """Per blob: whether some of its pixels are track ``tid``'s, and whether some of
    those have been theirs for ``core_frames`` frames in a row (``age``)."""
    holds, cored = np.zeros(n, np.bool_), np.zeros(n, np.bool_)
    for c in range(1, n):
        for y in range(box[c, 1], box[c, 3]):
            for x in range(box[c, 0], box[c, 2]):
                if comp[y, x] == c and labels[y, x] == tid:
                    holds[c] = True
                    if age[y, x] >= core_frames:
                        cored[c] = True
                        break
            if cored[c]:
                break
    return holds, cored


@njit(cache=True, nogil=True)
def _relabel(comp, labels, tid, new):
    """On blob c's pixels of track ``tid``, track ``new[c]`` where that is not 0 (in place)."""
    h, w = comp.shape
    for y in range(h):
        for x in range(w):
            c = comp[y, x]
            if c > 0 and new[c] and labels[y, x] == tid:
                labels[y, x] = new[c]


@njit(cache=True, nogil=True)
def _tracks(labels):
    """The tracks in ``labels`` (int32 (h, w), 0: none): their ids, areas, column sums, boxes.

    Returns int64 (k,) ids in increasing order, (k,) areas in pixels, (k,) sums
    of their pixels' columns and (k, 4) boxes (x0, y0, x1, y1).
    """
    area, xsum, box = _label_stats(labels, labels.max() + 1)
    ids = np.flatnonzero(area[1:]) + 1
    return ids, area[ids], xsum[ids], box[ids]


@njit(cache=True, nogil=True)
def _remember(labels, main, age, last):
    """Frames in a row as the main person's (``age``) and since last theirs (``last``), in place.

    Returns the largest ``age``.
    labels: int32, age and last: uint16, all (h, w) and contiguous. The
    arithmetic stays in each array's own type, so the loops vectorise.
    """
    lab, ag, la = labels.reshape(-1), age.reshape(-1), last.reshape(-1)
    tid = np.int32(main)
    top = np.uint16(0)
    for i in range(lab.size):
        a = ag[i]
        a = min(a + np.uint16(1), np.uint16(60000)) if lab[i] == tid else np.uint16(0)
        ag[i] = a
        top = max(top, a)
    for i in range(lab.size):
        a = la[i]
        la[i] = np.uint16(0) if lab[i] == tid else min(a + np.uint16(1), np.uint16(1000))
    return top


@njit(cache=True, nogil=True)
def _halo(labels, comp, lut, box, half, main, keep, out):
    """The weights on ``box`` (x0, y0, x1, y1): ``lut[labels]`` on blob pixels, elsewhere its
    least value under the structuring element centred there (cv2.erode's result), or 1
    within ``keep`` pixels (Chebyshev) of track ``main``'s pixels.

    half: int64 (2r + 1,), row i of the element spans columns -half[i]..half[i]
    around the centre (-1: an empty row). out: float32 (y1 - y0, x1 - x0).
    Each row's minimum over spans of every width is made once (``run``), so a
    pixel reads 2r + 1 values, not the element's area; the inner loops run
    along rows, over +inf beyond the frame (as cv2's border), and vectorise.
    """
    h, w = labels.shape
    r = (half.size - 1) // 2
    x0, y0, x1, y1 = box
    a_max = max(0, half.max())
    bw = x1 - x0
    ry0, ry1 = max(0, y0 - r), min(h, y1 + r)
    inf = np.float32(np.inf)
    own = np.full((ry1 - ry0, bw + 2 * a_max), inf, np.float32)  # column k: x0 - a_max + k
    cx0, cx1 = max(0, x0 - a_max), min(w, x1 + a_max)
    for y in range(ry0, ry1):
        src, dst = labels[y, cx0:cx1], own[y - ry0, cx0 - x0 + a_max:cx1 - x0 + a_max]
        for k in range(src.size):
            dst[k] = lut[src[k]]
    # Inner loops index only with the loop counter (slices made first): an offset
    # index that might be negative keeps LLVM from vectorising (7x slower here).
    run = np.empty((a_max + 1, ry1 - ry0, bw), np.float32)  # min over x - a .. x + a
    for y in range(ry1 - ry0):
        run[0, y] = own[y, a_max:a_max + bw]
        for a in range(1, a_max + 1):
            prev, cur = run[a - 1, y], run[a, y]
            lo, hi = own[y, a_max - a:a_max - a + bw], own[y, a_max + a:a_max + a + bw]
            for k in range(bw):
                u, v, z = prev[k], lo[k], hi[k]
                u = u if u < v else v
                cur[k] = u if u < z else z
    # near[y, k]: track main within keep columns of (x0 + k, y); then within keep rows too
    ky0, ky1 = max(0, y0 - keep), min(h, y1 + keep)
    near = np.zeros((ky1 - ky0, bw), np.bool_)
    tid = np.int32(main)
    for y in range(ky0, ky1 if main > 0 else ky0):
        row, dst = labels[y], near[y - ky0]
        for x in range(max(0, x0 - keep), min(w, x1 + keep)):
            if row[x] == tid:
                for k in range(max(0, x - keep - x0), min(bw, x + keep + 1 - x0)):
                    dst[k] = True
    kept = np.zeros(bw, np.bool_)
    a, b = np.empty(bw, np.float32), np.empty(bw, np.float32)
    for y in range(y0, y1):
        kept[:] = False
        for yy in range(max(ky0, y - keep), min(ky1, y + keep + 1)):
            src = near[yy - ky0]
            for k in range(bw):
                kept[k] |= src[k]
        a[:] = inf
        for i in range(max(0, r - y), min(half.size, h - y + r)):
            if half[i] < 0:
                continue
            src = run[half[i], y + i - r - ry0]
            for k in range(bw):  # into the other buffer: in place, this loop does not vectorise
                u, v = a[k], src[k]
                b[k] = u if u < v else v
            a, b = b, a
        dst, blob, mine = out[y - y0], comp[y, x0:x1], own[y - ry0, a_max:a_max + bw]
        for k in range(bw):
            dst[k] = mine[k] if blob[k] > 0 else (1.0 if kept[k] else a[k])


def _chamfer_steps() -> tuple[np.float32, np.float32, np.float32]:
    """cv2.distanceTransform's (DIST_L2, 3x3) side step, diagonal step and least two-step
    distance, as it computes them (OpenCV 4 in fixed point, 5 in float32)."""
    one = np.ones((5, 5), np.uint8)
    one[2, 2] = 0
    d = cv2.distanceTransform(one, cv2.DIST_L2, 3)
    ring = np.concatenate([d[0], d[4], d[1:4, 0], d[1:4, 4]])
    return np.float32(d[2, 1]), np.float32(d[1, 1]), np.float32(ring.min())


_CHAMFER = _chamfer_steps()
_warm = False


def warm_kernels() -> None:
    """Compile (or load from numba's disk cache) every kernel of this module now.

    Some run only in rare frames (a passer-by touching the user); compiled
    there, the first such frame would stall for a second mid-stream.
    """
    global _warm
    if _warm:
        return
    comp = np.zeros((4, 4), np.int32)
    comp[1:3, 1:3] = 1
    box = np.array([[0, 0, 0, 0], [1, 1, 3, 3]], np.int64)
    ages, dist = np.zeros((4, 4), np.uint16), np.zeros((4, 4), np.float32)
    _blobs(comp.copy(), 2, 1)
    _overlaps(comp, comp, 1)
    _grown(comp, 2, box, 1, np.zeros((4, 4), np.int32))
    ident, split, _ = _votes(comp, 2, box, comp, 2, ages, 10, 1)
    _blob_min(comp, 2, dist, comp, 0)
    _write(comp, 2, box, ident, split, comp, ages, 10, 1, np.zeros((4, 4), np.int32))
    _resolve(comp, 2, box, split, dist, np.float32(1.5), 1, np.zeros((4, 4), np.int32))
    _resolve_near(comp, 2, box, split, comp, 1, True, True, np.zeros((4, 4), np.int32))
    _holding(comp, 2, box, comp, 1, ages, 15)
    _relabel(comp, comp.copy(), 1, np.zeros(2, np.int32))
    _tracks(comp)
    _remember(comp, 1, ages.copy(), ages.copy())
    _halo(comp, comp, np.ones(2, np.float32), (0, 0, 4, 4), _element_half(1), 1, 2,
          np.empty((4, 4), np.float32))
    _warm = True


def _element_half(r: int) -> np.ndarray:
    """Half-widths per row of cv2's (2r + 1)-pixel ellipse (see :func:`_halo`)."""
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    half = np.full(2 * r + 1, -1, np.int64)
    for i, row in enumerate(k):
        cols = np.flatnonzero(row)
        if cols.size:
            half[i] = r - cols[0]
            if not np.array_equal(cols, np.arange(r - half[i], r + half[i] + 1)):
                raise ValueError(f"the {2 * r + 1}-pixel ellipse has a row that is not one span")
    return half


@dataclass(frozen=True)
class SubjectOptions:
    """Tuning of :class:`SubjectFilter`; distances in pixels of the working grid.

    Attributes:
        grid: the working grid is the net's probability shrunk by this factor
            (2: 128x72 for the landscape net; a quarter of the work, and
            connected components, distance transforms and the rest cost
            about four times less).
        threshold: probability above which a pixel belongs to a blob.
        min_area: blobs smaller than this (pixels; 16 is 0.2 % of 128x72) are specks
            of haze, not people: no track, they take the weight around them.
        match_px: how far a blob may have moved since the previous frame and
            still continue its track (1-1.5 px per frame at 128x72 is a brisk walk).
        near_px: a new blob within this distance of the main person is theirs
            (8: 6 % of the width; a weak arm appears in pieces up to ~6 px off).
        main_margin_px: a merged pixel this close to the main person's previous
            mask stays theirs, whatever else is near.
        fade_frames: frames a fade out (or a companion's fade in) takes.
        companion_area: a companion's area, as a fraction of the main person's.
        companion_bottom: a companion reaches below this fraction of the height.
        companion_frames: frames a large, near person must stay to be kept
            (30: about a second at 30 frames/s).
        forget_frames: a track unseen this long is dropped.
        core_frames: frames in a row a pixel must be the main person's to be
            part of their core (see :meth:`SubjectFilter._prune_main`).
        recent_frames: a pixel that was the main person's this recently stays
            theirs in a blob shared with someone else (a weak, flickering arm
            next to a passer-by).
        halo_px: pixels farther than this from every blob are left as they are.
        keep_px: pixels on no blob within this many pixels (Chebyshev) of the
            main person's mask have weight 1, whatever faded person is near:
            their edge at full size reaches into the grid pixels next to their
            mask (a pixel half theirs has a mean under the threshold, so it is
            on no blob), and the bilinear resize of the weights reads one pixel
            further. With the halo's weight there, a passer-by 3-6 px away cut
            0.23 % of the main person (a crowd clip ``cross``).
    """

    grid: int = 2
    threshold: float = 0.5
    min_area: int = 16
    match_px: float = 2.0
    near_px: float = 8.0
    main_margin_px: float = 1.5
    fade_frames: int = 5
    companion_area: float = 0.4
    companion_bottom: float = 0.85
    companion_frames: int = 30
    forget_frames: int = 15
    core_frames: int = 15
    recent_frames: int = 10
    halo_px: float = 6.0
    keep_px: int = 2


@dataclass
class Track:
    """One tracked blob (a person or a part of one)."""

    weight: float
    kind: str = "other"    # main, companion, other
    streak: int = 0        # frames in a row meeting (or, for a companion, failing) the companion test
    unseen: int = 0


@dataclass
class SubjectState:
    """Everything :class:`SubjectFilter` carries from one frame to the next.

    Attributes:
        labels: int32 (h, w) track id per pixel of the previous frame's mask
            (0: no person), or None before the first frame.
        main_age: uint16 (h, w) frames in a row each pixel has been the main person's.
        main_last: uint16 (h, w) frames since each pixel was last the main person's.
        tracks: track id -> :class:`Track`.
        main: id of the main person's track, or 0 when there is none.
        next_id: the next free track id.
        frames: frames seen since the last reset.
        main_core: whether some pixel of ``main_age`` has reached ``core_frames``.
        faded: the last frame's weights where they are not 1 (float32 on a box
            of the working grid), that box (x0, y0, x1, y1), the grid's (h, w)
            and the probability's (H, W); None when nothing was faded.
    """

    labels: np.ndarray | None = None
    main_age: np.ndarray | None = None
    main_last: np.ndarray | None = None
    tracks: dict[int, Track] = field(default_factory=dict)
    main: int = 0
    next_id: int = 1
    frames: int = 0
    main_core: bool = False
    faded: tuple | None = None

    @property
    def weight(self) -> np.ndarray | None:
        """float32 (H, W): what the last probability was multiplied by, or None when
        nothing was faded (made on request, from ``faded``; for the evaluation)."""
        if self.faded is None:
            return None
        sub, (x0, y0, x1, y1), grid, shape = self.faded
        whole = np.ones(grid, np.float32)
        whole[y0:y1, x0:x1] = sub
        return whole if grid == shape else cv2.resize(whole, shape[::-1],
                                                       interpolation=cv2.INTER_LINEAR)


class SubjectFilter:
    """Keeps the main person (and companions who stay), fades out the others.

    Args:
        options: a :class:`SubjectOptions` (the defaults when None).
    """

    def __init__(self, options: SubjectOptions | None = None):
        self.options = options or SubjectOptions()
        self.state = SubjectState()
        warm_kernels()
        self._half = _element_half(int(round(self.options.halo_px)))
        self._boxes: dict = {}  # track id -> its box [x0, y0, x1, y1] in this frame
        self._grow = max(1, int(round(self.options.match_px)))

    def reset(self) -> None:
        self.state = SubjectState()

    @property
    def fading(self) -> bool:
        """True while some person's weight is between 0 and 1 (a fade under way)."""
        return any(0.0 < t.weight < 1.0 for t in self.state.tracks.values())

    def update(self, probability: np.ndarray) -> np.ndarray:
        """The probability with the people who are not the subject faded out.

        Args:
            probability: float32 (h, w) in [0, 1], the net's output.

        Returns:
            float32 (h, w) in [0, 1]; the input itself when nothing is faded.
        """
        o = self.options
        full = np.asarray(probability, np.float32)
        h, w = full.shape
        p = cv2.resize(full, (max(1, w // o.grid), max(1, h // o.grid)),
                       interpolation=cv2.INTER_AREA) if o.grid > 1 else full
        faded = self._weights(p)
        self.state.faded = None if faded is None else (*faded, p.shape, full.shape)
        return full if faded is None else _scaled(full, p.shape, *faded)

    def _weights(self, p: np.ndarray) -> np.ndarray | None:
        """float32 weights on the working grid, or None when nothing is faded."""
        o, st = self.options, self.state
        st.frames += 1
        if st.next_id >= COMPACT_AT:
            self._compact()
        # p > threshold as float32 (as numpy compares a float32 array), in one call
        mask = cv2.compare(p, float(np.float32(o.threshold)), cv2.CMP_GT)
        n, comp = cv2.connectedComponents(mask, connectivity=8, ltype=cv2.CV_32S)
        # specks of haze (under min_area) go: no track, they take the weight around them
        n, box = _blobs(comp, n, o.min_area)
        if n <= 1:
            self._age(())
            st.labels = np.zeros(p.shape, np.int32)
            return None
        if st.labels is None or st.labels.shape != p.shape:
            st.labels, st.tracks, st.main = None, {}, 0
        first = st.labels is None or not st.tracks
        labels = self._assign(comp, n, box, first)
        self._prune_main(labels, comp, n, box)
        area = self._classify(labels)
        self._remember_main(labels)
        st.labels = labels
        return self._apply(labels, comp, area)

    # ------------------------------------------------------------------ steps

    def _compact(self) -> None:
        """Renumber the tracks 1..k, in their order (see :data:`COMPACT_AT`)."""
        st = self.state
        old = sorted(st.tracks)
        lut = np.zeros(st.next_id, np.int32)
        lut[old] = np.arange(1, len(old) + 1, dtype=np.int32)
        if st.labels is not None:
            st.labels = lut[st.labels]
        st.tracks = {int(lut[t]): st.tracks[t] for t in old}
        st.main = int(lut[st.main])
        st.next_id = len(old) + 1

    def _new_track(self, weight: float) -> int:
        st = self.state
        tid = st.next_id
        st.next_id += 1
        st.tracks[tid] = Track(weight=weight)
        return tid

    def _assign(self, comp: np.ndarray, n: int, box: np.ndarray, first: bool) -> np.ndarray:
        """Track id per pixel of this frame's mask (0 elsewhere).

        comp: int32 (h, w) blob per pixel, 1..n-1 (0: none); box: their boxes.
        """
        o, st = self.options, self.state
        if first:
            lut = np.zeros(n, np.int32)
            for c in range(1, n):
                lut[c] = self._new_track(1.0)
            return lut[comp]
        prev = st.labels
        if n == 2 and st.main and st.main in st.tracks and _overlaps(comp, prev, st.main):
            # one blob (the usual frame: the user alone) overlapping the user: theirs
            return comp * np.int32(st.main)
        # the previous tracks grown by match_px (where two are that close, the higher id wins)
        near_id = np.zeros(comp.shape, np.int32)  # read on the blobs only
        _grown(prev, n, box, self._grow, near_id)
        if st.main and st.main_last is not None and st.main_last.shape == comp.shape:
            last, recent_frames = st.main_last, o.recent_frames
        else:
            last, recent_frames = np.zeros(comp.shape, np.uint16), -1  # none recent
        # split: the main person's blobs, of which only what is clearly someone else's goes
        ident, split, zero = _votes(comp, n, box, near_id, st.next_id, last, recent_frames,
                                    st.main)
        main_dist = None  # made only when some pixel needs it
        if zero:  # new blobs: the main person's when near them, else new tracks
            main_dist = self._main_dist(prev)
            near = _blob_min(comp, n, main_dist, comp, 0) <= o.near_px
            for c in np.flatnonzero(ident == 0)[1:].tolist():
                ident[c] = st.main if st.main and near[c] else self._new_track(0.0)
        labels = np.zeros(comp.shape, np.int32)
        if _write(comp, n, box, ident, split, near_id, last, recent_frames, st.main, labels):
            margin = np.float32(o.main_margin_px)  # compared as float32, as numpy did
            side, corner, two = _CHAMFER
            if main_dist is None and margin < two:
                _resolve_near(comp, n, box, split, prev, st.main, side <= margin,
                              corner <= margin, labels)
                return labels
            if main_dist is None:
                main_dist = self._main_dist(prev)
            _resolve(comp, n, box, split, main_dist, margin, st.main, labels)
        return labels

    def _main_dist(self, prev: np.ndarray) -> np.ndarray:
        """float32: each pixel's distance to the main person's previous mask (inf: none)."""
        main = self.state.main
        if not main or not np.any(prev == main):
            return np.full(prev.shape, np.inf, np.float32)
        return cv2.distanceTransform((prev != main).astype(np.uint8), cv2.DIST_L2, 3)

    def _remember_main(self, labels: np.ndarray) -> None:
        """Update the per-pixel main-person history (``main_age``, ``main_last``)."""
        st = self.state
        if st.main_age is None or st.main_age.shape != labels.shape:
            st.main_age = np.zeros(labels.shape, np.uint16)
            st.main_last = np.full(labels.shape, 1000, np.uint16)
        st.main_core = _remember(labels, st.main, st.main_age, st.main_last) >= self.options.core_frames

    def _prune_main(self, labels: np.ndarray, comp: np.ndarray, n: int,
                    box: np.ndarray) -> None:
        """Blobs that took the main track but hold none of the main person's core go.

        The core is where the main person has been for ``core_frames`` frames in
        a row. A passer-by who emerges from behind the user is first taken
        for part of them (their new pixels touch the user); once the blobs part,
        theirs has no core and becomes a track of its own, which fades out.
        """
        o, st = self.options, self.state
        if not st.main or st.main_age is None or st.main_age.shape != labels.shape:
            return
        if n < 3 or not st.main_core:
            return  # one blob, or no core yet
        mains, cored = _holding(comp, n, box, labels, st.main, st.main_age, o.core_frames)
        if mains.sum() < 2 or not (mains & ~cored).any():
            return  # one blob, or each holds some core (at distance 0)
        core = (st.main_age >= o.core_frames).astype(np.uint8)
        core_dist = cv2.distanceTransform(1 - core, cv2.DIST_L2, 3)
        dist = _blob_min(comp, n, core_dist, labels, st.main)
        new = np.zeros(n, np.int32)
        for c in np.flatnonzero(mains & (dist > o.near_px)).tolist():
            new[c] = self._new_track(1.0)
        _relabel(comp, labels, st.main, new)

    def _classify(self, labels: np.ndarray) -> dict[int, int]:
        """Pick the main track when there is none, promote or demote companions, fade.

        Returns the area in pixels of every track seen in this frame.
        """
        o, st = self.options, self.state
        h, w = labels.shape
        ids, counts, xsum, boxes = (a.tolist() for a in _tracks(labels))
        area = dict(zip(ids, counts))
        self._boxes = dict(zip(ids, boxes))  # absorbing into the main person leaves others' alone
        self._age(area)
        if not st.main or st.main not in area:
            st.main = self._pick_main(area, self._boxes, dict(zip(ids, xsum)), h, w)
            if st.main:
                st.tracks[st.main].kind = "main"
                self._absorb(labels, area)
        step = 1.0 / max(1, o.fade_frames)
        main_area = area.get(st.main, 0)
        for tid, a in area.items():
            t = st.tracks[tid]
            if tid == st.main:
                t.kind, t.weight = "main", 1.0
                continue
            near = (a >= o.companion_area * main_area
                    and self._boxes[tid][3] - 1 >= o.companion_bottom * (h - 1))
            if t.kind == "companion":
                t.streak = 0 if near else t.streak + 1
                if t.streak >= o.companion_frames:
                    t.kind, t.streak = "other", 0
            else:
                t.kind = "other"
                t.streak = t.streak + 1 if near else 0
                if t.streak >= o.companion_frames:
                    t.kind, t.streak = "companion", 0
            if near and t.kind == "other":
                continue  # large and near, maybe staying: held as it is until decided
            target = 1.0 if t.kind == "companion" else 0.0
            t.weight = min(1.0, t.weight + step) if target else max(0.0, t.weight - step)
        return area

    def _absorb(self, labels: np.ndarray, area: dict[int, int]) -> None:
        """Blobs within ``near_px`` of a newly chosen main person become part of them."""
        st = self.state
        dist = cv2.distanceTransform((labels != st.main).astype(np.uint8), cv2.DIST_L2, 3)
        for tid in [t for t in area if t != st.main]:
            sel = labels == tid
            if float(dist[sel].min()) <= self.options.near_px:
                labels[sel] = st.main
                area[st.main] += area.pop(tid)
                del st.tracks[tid]

    @staticmethod
    def _pick_main(area: dict[int, int], boxes: dict, xsum: dict[int, int], h: int,
                   w: int) -> int:
        """The track most like a webcam's user: large, central, touching the bottom.

        boxes, xsum: per track id, its box [x0, y0, x1, y1] and the sum of its pixels' columns.
        """
        best, best_score = 0, 0.0
        for tid, a in area.items():
            centrality = 1.0 - 0.6 * min(1.0, abs(xsum[tid] / a / (w - 1) - 0.5) * 2.0)
            nearness = 1.5 if boxes[tid][3] - 1 >= h - 2 else 1.0
            score = a * centrality * nearness
            if score > best_score:
                best, best_score = tid, score
        return best

    def _age(self, seen) -> None:
        """Tracks not in ``seen`` (a container of ids) age; those unseen too long go."""
        st, o = self.state, self.options
        for tid in list(st.tracks):
            if tid in seen:
                st.tracks[tid].unseen = 0
                continue
            st.tracks[tid].unseen += 1
            if st.tracks[tid].unseen > o.forget_frames:
                del st.tracks[tid]
                if tid == st.main:
                    st.main = 0

    def _apply(self, labels: np.ndarray, comp: np.ndarray,
               area: dict[int, int]) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
        """Weights: each blob's track weight on its pixels, spread ``halo_px`` around faded ones.

        Pixels off every blob take the lowest weight within ``halo_px`` (the soft
        edge around a faded person fades with them); blob pixels keep their own;
        those off-blob pixels within ``keep_px`` of the main person have 1.
        Returns None when nothing is faded, else float32 weights on the box
        (x0, y0, x1, y1) of the grid around the faded people; 1 outside it.
        """
        st, o = self.state, self.options
        faded = [tid for tid in area if st.tracks[tid].weight < 1.0]
        if not faded:
            return None
        h, w = labels.shape
        r = int(round(o.halo_px))
        b = [self._boxes[tid] for tid in faded]
        x0, y0 = min(v[0] for v in b), min(v[1] for v in b)
        x1, y1 = max(v[2] for v in b), max(v[3] for v in b)
        # the weights differ from 1 only within r of a faded person
        ix0, iy0, ix1, iy1 = max(0, x0 - r), max(0, y0 - r), min(w, x1 + r), min(h, y1 + r)
        lut = np.ones(st.next_id, np.float32)
        for tid, t in st.tracks.items():
            lut[tid] = t.weight
        out = np.empty((iy1 - iy0, ix1 - ix0), np.float32)
        _halo(labels, comp, lut, (ix0, iy0, ix1, iy1), self._half, st.main, o.keep_px, out)
        return out, (ix0, iy0, ix1, iy1)


def _scaled(full: np.ndarray, grid: tuple[int, int], weight: np.ndarray,
            box: tuple[int, int, int, int]) -> np.ndarray:
    """``full`` times the weights brought to its size (bilinear), touching only their part.

    full: float32 (H, W); grid: (h, w) of the working grid; weight: float32 on
    its box (x0, y0, x1, y1), 1 elsewhere. The same values as ``full *
    cv2.resize(weights, (W, H))``: outside the box, grown by the pixel bilinear
    reads, the weight is 1 (and 1 * p is p).
    """
    x0, y0, x1, y1 = box
    h, w = grid
    if full.shape == (h, w):
        out = full.copy()
        out[y0:y1, x0:x1] *= weight
        return out
    if full.shape != (2 * h, 2 * w):
        whole = np.ones(grid, np.float32)
        whole[y0:y1, x0:x1] = weight
        return full * cv2.resize(whole, full.shape[::-1], interpolation=cv2.INTER_LINEAR)
    # x2: a full-size pixel reads the grid pixels within 1 of its centre; the crop
    # is 1 more on each side so that its edges read what the whole grid would
    a0, a1, b0, b1 = max(0, y0 - 1), min(h, y1 + 1), max(0, x0 - 1), min(w, x1 + 1)
    c0, c1, d0, d1 = max(0, y0 - 2), min(h, y1 + 2), max(0, x0 - 2), min(w, x1 + 2)
    crop = np.ones((c1 - c0, d1 - d0), np.float32)
    crop[y0 - c0:y1 - c0, x0 - d0:x1 - d0] = weight
    up = cv2.resize(crop, (2 * (d1 - d0), 2 * (c1 - c0)), interpolation=cv2.INTER_LINEAR)
    out = full.copy()
    out[2 * a0:2 * a1, 2 * b0:2 * b1] *= up[2 * (a0 - c0):2 * (a1 - c0), 2 * (b0 - d0):2 * (b1 - d0)]
    return out


def make_subject(mode: str = "all", **options):
    """The subject stage for ``mode``: None for ``all`` (nothing to do), else a filter."""
    if mode not in MODES:
        raise ValueError(f"subject {mode!r}: use one of {', '.join(MODES)}")
    if mode == "all":
        return None
    return SubjectFilter(SubjectOptions(**options))
