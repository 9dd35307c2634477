"""Webcam-like training views of the training photos (for ``models/train.py``).

A view is one photo turned into what the segmenter would see: a crop or a
composite, brought to a "sensor" image at twice 1.5 times the net size (384x216
for the landscape net), degraded there as a webcam degrades a 720p frame (noise,
JPEG, exposure and white-balance drift, motion or focus blur, cast shadows),
then shrunk to the net size with area averaging as the segmenter does.

Framings (``augment=True``), by probability:

* 0.35 ``photo``: the whole photo (random 80-100% crop per axis), stretched
  like the dev photos are;
* 0.35 ``wide``: a 16:9 crop from the upper part of a full-body photo (an
  upper-body webcam frame); the portraits are head crops already, and a 16:9
  crop of them cuts the face, so for them this share goes to ``photo``;
* 0.30 ``canvas``: the person cut out by its mask and composited, at 45-100%
  (portraits 70-100%) of the frame height, into a 16:9 frame whose background is
  a person-free band of another training photo, mirror-tiled (people further
  from the camera, other rooms).

``closeup`` (0 unless asked for) takes that share of a portrait's views from
its ``photo`` share: a 16:9 crop of the head, the face filling the frame.
``distract`` (0 unless asked for) puts solid things behind the person in that
share of views (:func:`_distractors`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class Sample:
    """One training pair: BGR uint8 (H, W, 3) image, uint8 (H, W) mask in {0, 1}, folder name."""

    image: np.ndarray
    mask: np.ndarray
    kind: str


@dataclass
class View:
    """Net-sized view: BGR uint8 (h, w, 3); float32 (h, w) label in [0, 1]; boundary band in {0, 1}."""

    image: np.ndarray
    label: np.ndarray
    band: np.ndarray


BAND_PX = 3  # half-width of the boundary band at net resolution (2% of 256x144's diagonal is 6)


def _crop(s: Sample, x0: int, y0: int, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    return s.image[y0:y0 + h, x0:x0 + w], s.mask[y0:y0 + h, x0:x0 + w]


def _photo(s: Sample, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    h, w = s.mask.shape
    cw, ch = int(w * rng.uniform(0.8, 1.0)), int(h * rng.uniform(0.8, 1.0))
    return _crop(s, int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1)), cw, ch)


def _strip(s: Sample, rng: np.random.Generator, width: tuple[float, float],
           top: float) -> tuple[np.ndarray, np.ndarray]:
    """A 16:9 crop, ``width`` (low, high) of the photo's width, its top edge in the
    upper ``top`` share of the room left above and below it, at a random x."""
    h, w = s.mask.shape
    cw = int(w * rng.uniform(*width))
    ch = min(h, int(cw * 9 / 16))
    t = rng.uniform(0.0, top)
    return _crop(s, int(rng.integers(0, w - cw + 1)), int(t * (h - ch)), cw, ch)


def _wide(s: Sample, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return _strip(s, rng, (0.7, 1.0), 0.35 if s.kind == "portraits" else 0.5)


def _closeup(s: Sample, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A 16:9 crop of a portrait's head, 55-100% of its width: someone leaning into the camera.

    The face fills the frame and is cut at the chin or the eyes. MediaPipe's
    landscape net loses such a person entirely (IoU 0.00 and 0.12 on two
    generated JPEG clips of validation portraits where the square net keeps
    them), so the views teach it.
    """
    return _strip(s, rng, (0.55, 1.0), 0.45)


def _longest_free_run(occupied: np.ndarray) -> tuple[int, int]:
    """(start, length) of the longest run of False in a 1-D bool array."""
    best, start = (0, 0), None
    for k, v in enumerate(list(occupied) + [True]):
        if not v and start is None:
            start = k
        elif v and start is not None:
            best = max(best, (k - start, start))
            start = None
    return best[1], best[0]


def _background(pool: list[Sample], rng: np.random.Generator,
                size: tuple[int, int]) -> np.ndarray:
    """A person-free background of ``size`` (w, h) with real texture.

    The widest band of columns (or rows) of a training photo that its mask
    leaves empty, mirror-tiled to the size: a background smeared or blurred
    where the person was would teach the net that texture means person
    (measured: that version lowered the validation boundary IoU from 0.624 to
    0.533 in 150 steps, the output speckled where faces are smooth).
    """
    w, h = size
    for _ in range(8):
        s = pool[int(rng.integers(len(pool)))]
        for axis in (0, 1):  # 0: a band of columns, 1: a band of rows
            start, n = _longest_free_run(s.mask.any(axis=axis).astype(bool))
            if n >= 0.15 * s.mask.shape[1 - axis]:
                band = s.image[:, start:start + n] if axis == 0 else s.image[start:start + n]
                scale = h / band.shape[0] if axis == 0 else w / band.shape[1]
                scale *= rng.uniform(0.7, 1.3)
                band = cv2.resize(band, (max(2, int(band.shape[1] * scale)),
                                         max(2, int(band.shape[0] * scale))),
                                  interpolation=cv2.INTER_AREA)
                reps = (-(-h // band.shape[0]) + 1, -(-w // band.shape[1]) + 1)
                tile = _mirror_tile(band, reps)
                y0 = int(rng.integers(0, tile.shape[0] - h + 1))
                x0 = int(rng.integers(0, tile.shape[1] - w + 1))
                return np.ascontiguousarray(tile[y0:y0 + h, x0:x0 + w])
    return np.full((h, w, 3), rng.integers(40, 220, size=3), np.uint8)


def _mirror_tile(band: np.ndarray, reps: tuple[int, int]) -> np.ndarray:
    """``band`` tiled ``reps`` (rows, cols) times, every other copy mirrored (no seams)."""
    row = np.concatenate([band if c % 2 == 0 else band[:, ::-1] for c in range(reps[1])], 1)
    return np.concatenate([row if r % 2 == 0 else row[::-1] for r in range(reps[0])], 0)


def _photo_background(pool: list[Sample], rng: np.random.Generator,
                      size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Another training photo, people and all, as a background of ``size`` (w, h).

    A random 16:9 crop of it (its upper part for a full-body photo, as
    :func:`_wide` frames them), with its mask: whoever is in it stays a person in
    the label. Returns (BGR uint8 (h, w, 3), float32 (h, w) mask in [0, 1]).
    """
    b = pool[int(rng.integers(len(pool)))]
    img, m = _wide(b, rng) if b.kind != "portraits" else _photo(b, rng)
    img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    m = cv2.resize(m.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    return img, m


def _canvas(s: Sample, pool: list[Sample], rng: np.random.Generator,
            size: tuple[int, int], bg: str = "tile") -> tuple[np.ndarray, np.ndarray]:
    """``s``'s person pasted into a 16:9 frame of ``size``; ``bg``: ``tile`` (a
    person-free band of another photo, mirror-tiled) or ``photo`` (another whole
    photo, its people labelled too, see :func:`_photo_background`)."""
    cw, ch = size
    low = 0.7 if s.kind == "portraits" else 0.45  # portraits are head crops already
    scale = rng.uniform(low, 1.0) * ch / s.mask.shape[0]
    pw, ph = max(4, int(s.mask.shape[1] * scale)), max(4, int(s.mask.shape[0] * scale))
    fg = cv2.resize(s.image, (pw, ph), interpolation=cv2.INTER_AREA)
    m = cv2.resize(s.mask.astype(np.float32), (pw, ph), interpolation=cv2.INTER_AREA)
    x0 = int(rng.integers(-pw // 4, cw - 3 * pw // 4 + 1))
    y0 = ch - ph if s.kind == "portraits" else int(rng.integers(0, ch - ph + 1))
    if bg == "photo":
        bg_img, label = _photo_background(pool, rng, size)
        bg_img = bg_img.astype(np.float32)
    else:
        bg_img, label = _background(pool, rng, size).astype(np.float32), np.zeros((ch, cw),
                                                                                 np.float32)
    xs, xe = max(0, x0), min(cw, x0 + pw)
    a = cv2.GaussianBlur(m, (0, 0), 0.7)[:, xs - x0:xe - x0, None]
    region = bg_img[y0:y0 + ph, xs:xe]
    bg_img[y0:y0 + ph, xs:xe] = a * fg[:, xs - x0:xe - x0] + (1 - a) * region
    under = label[y0:y0 + ph, xs:xe]
    label[y0:y0 + ph, xs:xe] = np.maximum(m[:, xs - x0:xe - x0], under * (1 - a[..., 0]))
    return bg_img.astype(np.uint8), label


def _distractors(img: np.ndarray, label: np.ndarray, pool: list[Sample],
                 rng: np.random.Generator, near: float = 0.0) -> np.ndarray:
    """1-3 solid things put behind the person: the label stays as it is (they are background).

    Each is an ellipse or a convex polygon, 15-60% of the frame height, filled
    either with a shaded smooth colour (a mug, a lamp, a chair back) or with
    texture from a person-free part of another training photo, its edge
    softened by 0.7 px. The training photos' backgrounds hold few such
    objects, and the fine-tuned nets took whole objects beside the person for
    the person (background pixels with p > 0.1 on a generated clip: 42 %
    against MediaPipe's 11 %).

    A share ``near`` of them is centred on a person pixel (plus 10 % of the
    frame, normal), so that they stick out around the person as a chair back
    or a lamp does; the rest anywhere in the frame.
    """
    h, w = label.shape
    out = img.astype(np.float32)
    ys, xs = np.nonzero(label > 0.5)
    for _ in range(int(rng.integers(1, 4))):
        shape = np.zeros((h, w), np.float32)
        if len(xs) and rng.random() < near:  # right behind the person, like a chair back
            k = int(rng.integers(len(xs)))
            cx, cy = int(xs[k] + rng.normal(0, 0.1 * w)), int(ys[k] + rng.normal(0, 0.1 * h))
        else:
            cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        size = rng.uniform(0.15, 0.6) * h
        if rng.random() < 0.5:
            cv2.ellipse(shape, (cx, cy), (int(size * rng.uniform(0.3, 0.7)), int(size / 2)),
                        float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        else:
            angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(3, 8))))
            radii = size / 2 * rng.uniform(0.5, 1.0, len(angles))
            pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)
            cv2.fillConvexPoly(shape, pts.astype(np.int32), 1.0)
        shape = cv2.GaussianBlur(shape, (0, 0), 0.7)
        if rng.random() < 0.5:
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            g = (np.cos(rng.uniform(0, 2 * np.pi)) * (xx - cx) + np.sin(rng.uniform(0, 2 * np.pi))
                 * (yy - cy)) / max(size, 1.0)
            colour = rng.uniform(0, 255, 3).astype(np.float32)
            fill = colour * np.clip(1.0 + rng.uniform(0.2, 0.8) * g, 0.2, 1.6)[..., None]
        else:
            fill = _background(pool, rng, (w, h)).astype(np.float32)
        a = (shape * (1.0 - np.clip(label, 0.0, 1.0)))[..., None]
        out = a * np.clip(fill, 0, 255) + (1 - a) * out
    return out.astype(np.uint8)


def _photometric(img: np.ndarray, label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exposure, white balance, gamma, contrast, cast shadow, blur, noise and JPEG (uint8 in/out)."""
    # Exposure, per-channel white balance, gamma and contrast as one 8-bit lookup per channel.
    v = np.arange(256, dtype=np.float32)[:, None] / 255.0
    v = np.clip(v * rng.uniform(0.6, 1.4) * rng.uniform(0.85, 1.15, size=3), 0, 1)
    v = (v ** rng.uniform(0.7, 1.4) - 0.5) * rng.uniform(0.8, 1.2) + 0.5
    lut = (np.clip(v, 0, 1) * 255 + 0.5).astype(np.uint8).reshape(256, 1, 3)
    out = cv2.LUT(img, lut)
    h, w = label.shape
    if rng.random() < 0.25:  # a shadow cast on the background, not on the person
        shade = np.zeros((h, w), np.float32)
        cv2.ellipse(shade, (int(rng.integers(w)), int(rng.integers(h))),
                    (int(rng.integers(w // 8, w // 2)), int(rng.integers(h // 8, h // 2))),
                    float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        shade = cv2.GaussianBlur(shade, (0, 0), 6) * (1 - label) * rng.uniform(0.2, 0.6)
        out = (out * (1 - shade[..., None])).astype(np.uint8)
    if rng.random() < 0.15:
        n = int(rng.integers(3, 10))
        k = np.zeros((n, n), np.float32)
        k[n // 2] = 1.0 / n
        rot = cv2.getRotationMatrix2D(((n - 1) / 2, (n - 1) / 2), float(rng.uniform(0, 180)), 1)
        k = cv2.warpAffine(k, rot, (n, n))
        out = cv2.filter2D(out, -1, k / max(k.sum(), 1e-6))
    elif rng.random() < 0.15:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 1.5))
    if rng.random() < 0.6:  # sensor noise, sigma 1.3-9 grey levels at 1.5x the net size
        noise = np.empty(out.shape, np.int16)
        cv2.setRNGSeed(int(rng.integers(2**31)))
        cv2.randn(noise, 0, float(rng.uniform(1.3, 9.0)))
        out = cv2.add(out.astype(np.int16), noise).clip(0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        q = int(rng.integers(30, 91))
        out = cv2.imdecode(cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, q])[1],
                           cv2.IMREAD_COLOR)
    return out


def boundary_band(label: np.ndarray, d: int = BAND_PX) -> np.ndarray:
    """float32 {0, 1}: pixels within ``d`` of the label's 0.5 contour, and every soft pixel."""
    m = (label >= 0.5).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * d + 1, 2 * d + 1))
    band = (cv2.dilate(m, k) != cv2.erode(m, k)) | ((label > 0.02) & (label < 0.98))
    return band.astype(np.float32)


def make_view(s: Sample, pool: list[Sample], rng: np.random.Generator, w: int, h: int,
              augment: bool = True, canvas: float = 0.3, canvas_bg: str = "tile",
              wide: float = 0.35, closeup: float = 0.0, distract: float = 0.0,
              distract_near: float = 0.0) -> View:
    """One view of ``s`` at the net size ``w`` x ``h``; ``augment=False`` is the plain photo.

    ``canvas`` and ``wide`` are the shares of composites and of 16:9 crops (the
    rest is ``photo``), ``canvas_bg`` the composites' background (see
    :func:`_canvas`); ``closeup`` is the share of a portrait's views that are
    :func:`_closeup` crops, taken from its ``photo`` share; ``distract`` the share
    of views with :func:`_distractors` behind the person (``distract_near`` of
    them centred on the person).
    """
    if not augment:
        img, m = s.image, s.mask.astype(np.float32)
    else:
        sensor = (3 * w // 2, 3 * h // 2)
        r, photo = rng.random(), 1 - canvas - wide
        if s.kind == "portraits" and r < closeup:
            img, m = _closeup(s, rng)
        elif r < photo or (r < 1 - canvas and s.kind == "portraits"):
            img, m = _photo(s, rng)
        elif r < 1 - canvas and s.kind != "portraits":  # portraits: this share goes to photo
            img, m = _wide(s, rng)
        else:
            img, m = _canvas(s, pool, rng, sensor, canvas_bg)
        img = cv2.resize(img, sensor, interpolation=cv2.INTER_AREA)
        m = cv2.resize(m.astype(np.float32), sensor, interpolation=cv2.INTER_AREA)
        if rng.random() < 0.5:
            img, m = img[:, ::-1], m[:, ::-1]
        if distract > 0 and rng.random() < distract:
            img = _distractors(np.ascontiguousarray(img), np.ascontiguousarray(m), pool, rng,
                               distract_near)
        img = _photometric(np.ascontiguousarray(img), np.ascontiguousarray(m), rng)
    img = cv2.resize(np.ascontiguousarray(img), (w, h), interpolation=cv2.INTER_AREA)
    label = cv2.resize(np.ascontiguousarray(m, np.float32), (w, h), interpolation=cv2.INTER_AREA)
    return View(image=img, label=label, band=boundary_band(label))
