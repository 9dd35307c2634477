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
   never shown. Each pixel gets the weight of the track of the nearest mask
   pixel, so the soft edge around a faded person fades with them; the
   probability is multiplied by it.

All state lives in one :class:`SubjectState`; :meth:`SubjectFilter.reset`
forgets it (new camera, new clip, scene cut). Cost, CPU time on one core of
the shared 2-core test machine (load average ~30), whatever the frame size:
0.57 ms p50 with one person in view, 0.8-1.3 ms with two
(``scripts/subject_eval.py --bench``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

MODES = ("all", "main")


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
        weight: float32 (h, w), what the last probability was multiplied by, or
            None when nothing was faded.
    """

    labels: np.ndarray | None = None
    main_age: np.ndarray | None = None
    main_last: np.ndarray | None = None
    tracks: dict[int, Track] = field(default_factory=dict)
    main: int = 0
    next_id: int = 1
    frames: int = 0
    weight: np.ndarray | None = None


class SubjectFilter:
    """Keeps the main person (and companions who stay), fades out the others.

    Args:
        options: a :class:`SubjectOptions` (the defaults when None).
    """

    def __init__(self, options: SubjectOptions | None = None):
        self.options = options or SubjectOptions()
        self.state = SubjectState()

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
        o, st = self.options, self.state
        full = np.asarray(probability, np.float32)
        h, w = full.shape
        p = cv2.resize(full, (max(1, w // o.grid), max(1, h // o.grid)),
                       interpolation=cv2.INTER_AREA) if o.grid > 1 else full
        weight = self._weights(p)
        st.weight = None if weight is None else (
            cv2.resize(weight, (w, h), interpolation=cv2.INTER_LINEAR) if o.grid > 1 else weight)
        return full if st.weight is None else full * st.weight

    def _weights(self, p: np.ndarray) -> np.ndarray | None:
        """float32 weights on the working grid, or None when nothing is faded."""
        o, st = self.options, self.state
        mask = (p > o.threshold).astype(np.uint8)
        st.frames += 1
        n, comp, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        small = stats[1:, cv2.CC_STAT_AREA] < o.min_area
        if small.any():  # specks of haze: no track, they take the weight around them
            keep = np.concatenate([[0], np.cumsum(~small)]) * np.concatenate([[0], ~small])
            comp = keep.astype(np.int32)[comp]
            stats = np.concatenate([stats[:1], stats[1:][~small]])
            n = len(stats)
            mask = (comp > 0).astype(np.uint8)
        if n <= 1:
            self._age(set())
            st.labels = np.zeros(p.shape, np.int32)
            return None
        if st.labels is None or st.labels.shape != p.shape:
            st.labels, st.tracks, st.main = None, {}, 0
        first = st.labels is None or not st.tracks
        labels = self._assign(comp, n, stats, first)
        self._prune_main(labels, comp, n, stats)
        area = self._classify(labels)
        self._remember_main(labels == st.main)
        st.labels = labels
        return self._apply(labels, mask, area)

    # ------------------------------------------------------------------ steps

    def _new_track(self, weight: float) -> int:
        st = self.state
        tid = st.next_id
        st.next_id += 1
        st.tracks[tid] = Track(weight=weight)
        return tid

    def _assign(self, comp: np.ndarray, n: int, stats: np.ndarray, first: bool) -> np.ndarray:
        """Track id per pixel of this frame's mask (0 elsewhere)."""
        o, st = self.options, self.state
        labels = np.zeros(comp.shape, np.int32)
        if first:
            lut = np.zeros(n, np.int32)
            for c in range(1, n):
                lut[c] = self._new_track(1.0)
            return lut[comp]
        prev = st.labels
        if n == 2 and st.main and st.main in st.tracks:
            # one blob (the usual frame: the user alone): theirs when it overlaps them
            if np.any((comp > 0) & (prev == st.main)):
                return np.where(comp > 0, np.int32(st.main), np.int32(0))
        # the previous tracks grown by match_px (where two are that close, the higher id wins)
        r = max(1, int(round(o.match_px)))
        near_id = cv2.dilate(prev.astype(np.float32), np.ones((2 * r + 1, 2 * r + 1), np.uint8))
        near_id = near_id.astype(np.int32)
        main_dist = None  # distance to the main person's previous mask, made when needed
        if st.main and st.main_last is not None and st.main_last.shape == comp.shape:
            recent_main = st.main_last <= o.recent_frames
        else:
            recent_main = np.zeros(comp.shape, bool)
        for c in range(1, n):
            x, y, bw, bh = (int(v) for v in stats[c, :4])
            box = (slice(y, y + bh), slice(x, x + bw))
            sel = comp[box] == c
            votes = np.bincount(near_id[box][sel], minlength=1)
            votes[0] = 0
            if (votes.sum() == 0 or st.main and votes.size > st.main and votes[st.main]) \
                    and main_dist is None:
                main_dist = self._main_dist(prev)
            if votes.sum() == 0:
                near_main = st.main and float(main_dist[box][sel].min()) <= o.near_px
                labels[box][sel] = st.main if near_main else self._new_track(0.0)
                continue
            recent = recent_main[box][sel]
            if st.main and ((st.main < votes.size and votes[st.main] > 0) or recent.any()):
                # the main person's blob: split off only what clearly belongs to someone else
                lab = np.full(int(sel.sum()), st.main, np.int32)
                if main_dist is None:
                    main_dist = self._main_dist(prev)
                nid, md = near_id[box][sel], main_dist[box][sel]
                other = (nid > 0) & (nid != st.main) & (md > o.main_margin_px) & ~recent
                lab[other] = nid[other]
                labels[box][sel] = lab
            else:
                labels[box][sel] = int(np.argmax(votes))
        return labels

    def _main_dist(self, prev: np.ndarray) -> np.ndarray:
        """float32: each pixel's distance to the main person's previous mask (inf: none)."""
        main = self.state.main
        if not main or not np.any(prev == main):
            return np.full(prev.shape, np.inf, np.float32)
        return cv2.distanceTransform((prev != main).astype(np.uint8), cv2.DIST_L2, 3)

    def _remember_main(self, main: np.ndarray) -> None:
        """Update the per-pixel main-person history (``main_age``, ``main_last``)."""
        st = self.state
        if st.main_age is None or st.main_age.shape != main.shape:
            st.main_age = np.zeros(main.shape, np.uint16)
            st.main_last = np.full(main.shape, 1000, np.uint16)
        np.minimum(st.main_age + 1, 60000, out=st.main_age)
        st.main_age[~main] = 0
        np.minimum(st.main_last + 1, 1000, out=st.main_last)
        st.main_last[main] = 0

    def _prune_main(self, labels: np.ndarray, comp: np.ndarray, n: int,
                    stats: np.ndarray) -> None:
        """Blobs that took the main track but hold none of the main person's core go.

        The core is where the main person has been for ``core_frames`` frames in
        a row. A passer-by who emerges from behind the user is first taken
        for part of them (their new pixels touch the user); once the blobs part,
        theirs has no core and becomes a track of its own, which fades out.
        """
        o, st = self.options, self.state
        if not st.main or st.main_age is None or st.main_age.shape != labels.shape:
            return
        core = (st.main_age >= o.core_frames).astype(np.uint8)
        if not core.any():
            return
        mains = np.unique(comp[labels == st.main]).tolist()
        if len(mains) < 2:
            return
        core_dist = cv2.distanceTransform(1 - core, cv2.DIST_L2, 3)
        for c in mains:
            x, y, bw, bh = (int(v) for v in stats[c, :4])
            box = (slice(y, y + bh), slice(x, x + bw))
            sel = (comp[box] == c) & (labels[box] == st.main)
            if sel.any() and float(core_dist[box][sel].min()) > o.near_px:
                labels[box][sel] = self._new_track(1.0)

    def _classify(self, labels: np.ndarray) -> dict[int, int]:
        """Pick the main track when there is none, promote or demote companions, fade.

        Returns the area in pixels of every track seen in this frame.
        """
        o, st = self.options, self.state
        h, w = labels.shape
        counts = np.bincount(labels.ravel())
        ids = np.flatnonzero(counts[1:]) + 1
        area = dict(zip(ids.tolist(), counts[ids].tolist()))
        self._age(set(area))
        if not st.main or st.main not in area:
            st.main = self._pick_main(labels, area)
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
            ys = np.nonzero(np.any(labels == tid, axis=1))[0]
            near = (a >= o.companion_area * main_area
                    and ys.size and ys[-1] >= o.companion_bottom * (h - 1))
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

    def _pick_main(self, labels: np.ndarray, area: dict[int, int]) -> int:
        """The track most like a webcam's user: large, central, touching the bottom."""
        h, w = labels.shape
        best, best_score = 0, 0.0
        for tid, a in area.items():
            ys, xs = np.nonzero(labels == tid)
            centrality = 1.0 - 0.6 * min(1.0, abs(xs.mean() / (w - 1) - 0.5) * 2.0)
            nearness = 1.5 if ys.max() >= h - 2 else 1.0
            score = a * centrality * nearness
            if score > best_score:
                best, best_score = tid, score
        return best

    def _age(self, seen: set[int]) -> None:
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

    def _apply(self, labels: np.ndarray, mask: np.ndarray,
               area: dict[int, int]) -> np.ndarray | None:
        """Weights: each blob's track weight on its pixels, spread ``halo_px`` around faded ones.

        Pixels off every blob take the lowest weight within ``halo_px`` (the soft
        edge around a faded person fades with them); blob pixels keep their own.
        """
        st, o = self.state, self.options
        if all(st.tracks[tid].weight >= 1.0 for tid in area):
            return None
        lut = np.ones(max(st.tracks) + 1, np.float32)
        for tid, t in st.tracks.items():
            lut[tid] = t.weight
        own = lut[labels]  # 1 off the blobs (labels 0)
        r = int(round(o.halo_px))
        spread = cv2.erode(own, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
        return np.where(mask > 0, own, spread)


def make_subject(mode: str = "all", **options):
    """The subject stage for ``mode``: None for ``all`` (nothing to do), else a filter."""
    if mode not in MODES:
        raise ValueError(f"subject {mode!r}: use one of {', '.join(MODES)}")
    if mode == "all":
        return None
    return SubjectFilter(SubjectOptions(**options))
