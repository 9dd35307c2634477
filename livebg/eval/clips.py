"""Synthetic webcam clips with exact per-frame ground truth.

A person cut out of a photo (image + binary mask) is composited over a
background photo and moved the way a person in front of a webcam moves:

* a still stretch (``n_still`` frames): the person does not move, only the
  sensor noise differs between frames, so any change of a predicted alpha here
  is flicker;
* a moving stretch (``n_move`` frames): smooth translation, a zoom (leaning in
  towards the camera and back), a small roll and a lateral sway of a few pixels
  per frame (a head-shake-like oscillation), all starting and ending at rest;
* a still stretch again (``n_still_end`` frames) at the final pose.

A slow global exposure change runs from the middle of the motion to the end of
the clip; Gaussian sensor noise is drawn fresh for every frame; an optional
JPEG round trip mimics an MJPEG camera.

Framing: the dev photos are full-body portraits, so the upper part of the
person (head and torso, ``crop_fraction`` of the mask's bounding-box height) is
scaled so that it spans ``fill`` of the frame height and bottom-anchored (the
torso rises from the bottom edge), like a webcam shot.

Ground truth: the source is warped premultiplied, ``W(m*F)`` and ``W(m)``, with
one affine warp per frame, and the frame is
``I = gain * (W(m*F) + (1 - W(m)) * B) + noise``, so ``W(m)`` is the exact
alpha of the frame (up to noise, 8-bit rounding and JPEG).
Everything is deterministic for a given seed.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from livebg.eval.metrics import as_alpha, boundary_width

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
"""Folder of the images shipped with the package."""

DEFAULT_BACKGROUNDS = ("scene_coffee.jpg", "scene_rocket.jpg")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass
class Clip:
    """A generated clip and its ground truth.

    Attributes:
        frames: T BGR uint8 images (H, W, 3).
        masks: T float32 (H, W) alphas in [0, 1], the exact ground truth of
            each frame.
        moving: T flags; ``moving[t]`` is True when the person moved between
            frame t-1 and t (``moving[0]`` is False).
        name: short identifier (used as folder name by :func:`write_clip`).
        params: JSON-able description of how the clip was made (seed, sizes,
            per-frame motion and gain).
        masks_all: for clips with more than one person (:mod:`livebg.eval.crowd`),
            the truth with everyone in it (``masks`` then holds the main
            person only); None otherwise.
    """

    frames: list[np.ndarray]
    masks: list[np.ndarray]
    moving: list[bool]
    name: str
    params: dict = field(default_factory=dict)
    masks_all: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.frames)

    def still_masks(self, margin_ratio: float = 0.02) -> list[np.ndarray]:
        """Pixels known to be static, one bool (H, W) mask per frame pair.

        Entry t-1 is for the pair (t-1, t): all True when the person did not
        move; otherwise the pixels farther than ``d = boundary_width(shape,
        margin_ratio)`` (chessboard) from the person in both frames. The margin
        keeps a prediction that is a little too wide but follows the motion from
        being counted as flicker. Pass the result to
        :func:`livebg.eval.metrics.flicker` as ``still``.
        """
        out = []
        d = boundary_width(self.masks[0].shape, margin_ratio) if self.masks else 1
        kernel = np.ones((2 * d + 1, 2 * d + 1), np.uint8)
        for t in range(1, len(self.masks)):
            if not self.moving[t]:
                out.append(np.ones(self.masks[t].shape, bool))
                continue
            person = ((self.masks[t - 1] > 0) | (self.masks[t] > 0)).astype(np.uint8)
            near = cv2.dilate(person, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
            out.append(near == 0)
        return out


@functools.cache
def _normal_quantiles() -> np.ndarray:
    """float32 (65536,): standard normal quantiles at (i + 0.5) / 65536."""
    inv = statistics.NormalDist().inv_cdf
    return np.array([inv((i + 0.5) / 65536) for i in range(65536)], np.float32)


def _gaussian_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """float32 noise, N(0, sigma^2) quantised to 65536 levels (|z| <= 4.3).

    Inverse-CDF lookup of 16-bit uniform integers: ~5x faster than
    ``rng.standard_normal`` and just as deterministic.
    """
    lut = _normal_quantiles() * np.float32(sigma)
    return lut[rng.integers(0, 65536, size=shape, dtype=np.uint16)]


def _smoothstep(u: float) -> float:
    u = min(max(u, 0.0), 1.0)
    return u * u * (3.0 - 2.0 * u)


def fit_background(
    background_bgr: np.ndarray, size: tuple[int, int], rng: np.random.Generator | None = None
) -> np.ndarray:
    """Scale a photo to cover ``size`` and crop it (centred, or at a random offset).

    Args:
        background_bgr: uint8 (h, w, 3).
        size: (W, H) of the output.
        rng: when given, the crop offset is drawn from it; else centred.

    Returns:
        uint8 (H, W, 3).
    """
    w_out, h_out = size
    bh, bw = background_bgr.shape[:2]
    s = max(w_out / bw, h_out / bh)
    nw, nh = max(w_out, math.ceil(bw * s)), max(h_out, math.ceil(bh * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    big = cv2.resize(background_bgr, (nw, nh), interpolation=interp)
    fx, fy = (rng.uniform(), rng.uniform()) if rng is not None else (0.5, 0.5)
    x0 = int(round((nw - w_out) * fx))
    y0 = int(round((nh - h_out) * fy))
    return np.ascontiguousarray(big[y0 : y0 + h_out, x0 : x0 + w_out])


def _check_inputs(
    person_bgr: np.ndarray, person_mask: np.ndarray, background_bgr: np.ndarray, size
) -> np.ndarray:
    """Validate the inputs of :func:`generate_clip`; return the mask as float32 [0, 1]."""
    for name, img in (("person_bgr", person_bgr), ("background_bgr", background_bgr)):
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
            raise TypeError(f"{name} must be a uint8 array")
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"{name} must have shape (H, W, 3), got {img.shape}")
    m = as_alpha(person_mask, "person_mask")
    if m.shape != person_bgr.shape[:2]:
        raise ValueError(
            f"person_mask shape {m.shape} differs from person_bgr {person_bgr.shape[:2]}"
        )
    if not np.any(m > 0.5):
        raise ValueError("person_mask is empty")
    if len(size) != 2 or min(size) < 8:
        raise ValueError(f"size must be (W, H) with both >= 8, got {size}")
    return m


def generate_clip(
    person_bgr: np.ndarray,
    person_mask: np.ndarray,
    background_bgr: np.ndarray,
    *,
    size: tuple[int, int] = (640, 360),
    n_still: int = 20,
    n_move: int = 30,
    n_still_end: int = 20,
    seed: int = 0,
    noise_sigma: float = 2.0,
    jpeg_quality: int | None = None,
    exposure: float = 0.12,
    name: str = "clip",
) -> Clip:
    """Make one clip of a person moving in front of a static webcam.

    Args:
        person_bgr: uint8 (h, w, 3) photo of the person.
        person_mask: (h, w) mask of the person, uint8 (255 = person) or float
            in [0, 1].
        background_bgr: uint8 (h', w', 3) background photo; scaled to cover
            the frame.
        size: (W, H) of the frames in pixels.
        n_still, n_move, n_still_end: lengths of the three stretches in frames.
        seed: seeds every random choice (pose, motion, exposure, noise).
        noise_sigma: std of the Gaussian sensor noise in 0..255 levels, fresh
            every frame; 0 for none.
        jpeg_quality: when set (1..100), every frame goes through a JPEG
            round trip at that quality.
        exposure: size of the exposure change as a fraction of the gain (the
            gain moves smoothly from 1 to 1 +- exposure, sign drawn from the
            seed, between the middle of the motion and the last frame); 0 for
            none.
        name: the clip's name.

    Returns:
        A :class:`Clip` of ``n_still + n_move + n_still_end`` frames.
    """
    m_src = _check_inputs(person_bgr, person_mask, background_bgr, size)
    if min(n_still, n_move, n_still_end) < 0 or n_still + n_move + n_still_end < 1:
        raise ValueError("stretch lengths must be >= 0 with at least one frame")
    w_out, h_out = int(size[0]), int(size[1])
    geo_rng, noise_rng = np.random.default_rng(seed).spawn(2)
    pose = _Pose.draw(geo_rng, w_out, h_out)  # drawn up front: the stream never depends on options
    src, base, pivot = _place_person(person_bgr, m_src, pose, w_out, h_out)
    background = fit_background(background_bgr, (w_out, h_out), geo_rng).astype(np.float32)
    motions, gains = _motion_path(pose, n_still, n_move, n_still_end, exposure)
    frames, masks, moving = _render(src, base, pivot, background, motions, gains, (w_out, h_out),
                                    noise_rng, noise_sigma, jpeg_quality)
    params = {
        "seed": int(seed),
        "size": [w_out, h_out],
        "n_still": n_still,
        "n_move": n_move,
        "n_still_end": n_still_end,
        "noise_sigma": float(noise_sigma),
        "jpeg_quality": jpeg_quality,
        "exposure": float(exposure),
        "crop_fraction": float(pose.crop_fraction),
        "fill": float(pose.fill),
        "pivot": [float(pivot[0]), float(pivot[1])],
        "motion_fields": ["dx_px", "dy_px", "scale", "roll_deg"],
        "motion": [[float(v) for v in mo] for mo in motions],
        "gains": [float(g) for g in gains],
    }
    return Clip(frames=frames, masks=masks, moving=moving, name=name, params=params)


@dataclass(frozen=True)
class _Pose:
    """The random pose and motion of one clip (pixels of the output frame, degrees)."""

    crop_fraction: float  # upper part of the person kept in view
    fill: float           # that part's height / frame height
    x_offset: float
    dx_end: float
    dy_end: float
    zoom_peak: float
    zoom_end: float
    sway_amp: float
    sway_cycles: float
    roll_deg: float
    gain_sign: float

    @classmethod
    def draw(cls, rng: np.random.Generator, w_out: int, h_out: int) -> _Pose:
        # The order of the draws is the clips' identity: never reorder.
        crop_fraction = rng.uniform(0.40, 0.52)
        fill = rng.uniform(0.80, 0.92)
        x_offset = rng.uniform(-0.12, 0.12) * w_out
        dx_end = rng.choice([-1.0, 1.0]) * rng.uniform(0.04, 0.10) * w_out
        dy_end = rng.uniform(-0.01, 0.03) * h_out
        zoom_peak = rng.uniform(0.04, 0.10)
        zoom_end = rng.uniform(-0.03, 0.03)
        sway_amp = rng.uniform(0.012, 0.02) * w_out
        sway_cycles = rng.uniform(1.5, 2.5)
        roll_deg = rng.uniform(-3.0, 3.0)
        gain_sign = rng.choice([-1.0, 1.0])
        return cls(crop_fraction, fill, x_offset, dx_end, dy_end, zoom_peak, zoom_end, sway_amp,
                   sway_cycles, roll_deg, gain_sign)


def _place_person(person_bgr, m_src, pose: _Pose, w_out: int, h_out: int):
    """(pre-scaled premultiplied BGRA person, 3x3 pixel -> frame matrix, pivot (x, y)).

    The crop line sits at the bottom edge, the torso centred near ``x_offset``.
    """
    ys, xs = np.nonzero(m_src > 0.5)
    y0, y1 = int(ys.min()), int(ys.max()) + 1
    y_cut = y0 + pose.crop_fraction * (y1 - y0)
    upper = ys < y_cut
    cx = float(xs[upper].mean())
    s0 = pose.fill * h_out / (y_cut - y0)
    # keep rows down to well below the crop line (never visible), pre-scale once
    row_end = min(m_src.shape[0], int(math.ceil(y_cut + 0.3 * (y1 - y0))) + 1)
    src = np.empty((row_end, m_src.shape[1], 4), np.float32)
    src[..., 3] = m_src[:row_end]
    src[..., :3] = person_bgr[:row_end].astype(np.float32) * m_src[:row_end, :, None]
    sw, sh = max(1, round(src.shape[1] * s0)), max(1, round(src.shape[0] * s0))
    src = cv2.resize(src, (sw, sh), interpolation=cv2.INTER_AREA if s0 < 1 else cv2.INTER_LINEAR)
    fx, fy = sw / m_src.shape[1], sh / row_end  # exact per-axis scale of the resize
    pivot = np.array([w_out / 2 + pose.x_offset, float(h_out)])
    # pre-scaled pixel -> frame: a translation putting (cx, y_cut) on the pivot
    # (a resize maps pixel centres as x' = (x + 0.5) * f - 0.5)
    base = np.array(
        [
            [1.0, 0.0, pivot[0] - ((cx + 0.5) * fx - 0.5)],
            [0.0, 1.0, pivot[1] - ((y_cut + 0.5) * fy - 0.5)],
            [0.0, 0.0, 1.0],
        ]
    )
    return src, base, pivot


def _motion_path(pose: _Pose, n_still: int, n_move: int, n_still_end: int, exposure: float):
    """Per frame: (dx, dy, scale, roll) and the exposure gain."""
    n = n_still + n_move + n_still_end
    ramp_start = n_still + n_move // 2
    motions, gains = [], []
    for t in range(n):
        u = 0.0 if n_move == 0 else min(max((t - n_still + 1) / n_move, 0.0), 1.0)
        env = math.sin(math.pi * u)
        sway = pose.sway_amp * math.sin(2 * math.pi * pose.sway_cycles * u) * env
        motions.append(
            (
                pose.dx_end * _smoothstep(u) + sway,
                pose.dy_end * _smoothstep(u),
                1.0 + pose.zoom_peak * env + pose.zoom_end * _smoothstep(u),
                pose.roll_deg * env,
            )
        )
        v = 0.0 if n - 1 <= ramp_start else (t - ramp_start) / (n - 1 - ramp_start)
        gains.append(1.0 + pose.gain_sign * exposure * _smoothstep(v))
    return motions, gains


def _render(src, base, pivot, background, motions, gains, size, noise_rng, noise_sigma,
            jpeg_quality):
    """(frames, masks, moving flags): the person warped over the background, frame by frame."""
    w_out, h_out = size
    frames, masks, moving = [], [], []
    cache_key, alpha, comp = None, None, None
    for t, (motion, gain) in enumerate(zip(motions, gains)):
        if motion != cache_key:
            dx, dy, scale, angle = motion
            rot = cv2.getRotationMatrix2D((float(pivot[0]), float(pivot[1])), angle, scale)
            rot[:, 2] += (dx, dy)
            affine = rot @ base  # (2, 3): pre-scaled source -> frame
            warped = cv2.warpAffine(
                src,
                affine,
                (w_out, h_out),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0,
            )
            alpha = np.clip(warped[..., 3], 0.0, 1.0)
            comp = warped[..., :3] + (1.0 - alpha)[..., None] * background  # noise-free composite
            cache_key = motion
        # gain * comp + noise, rounded and saturated to uint8 in one pass
        if noise_sigma > 0:
            noise = _gaussian_noise(noise_rng, comp.shape, noise_sigma)
            frame = cv2.addWeighted(comp, gain, noise, 1.0, 0.0, dtype=cv2.CV_8U)
        else:
            frame = cv2.addWeighted(comp, gain, comp, 0.0, 0.0, dtype=cv2.CV_8U)
        if jpeg_quality is not None:
            ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
            if not ok:
                raise RuntimeError("JPEG encoding failed")
            frame = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        frames.append(frame)
        masks.append(alpha.copy())
        moving.append(t > 0 and motion != motions[t - 1])
    return frames, masks, moving


# --------------------------------------------------------------------------- files


def write_clip(clip: Clip, directory: str | Path) -> Path:
    """Write a clip: ``frames/00000.png``, ``masks/00000.png`` (8-bit alpha, 255 =
    person) and ``meta.json`` (name, moving flags, params).

    Masks are rounded to 1/255; frames are stored losslessly. A clip with
    ``masks_all`` also gets ``masks_all/00000.png`` (everyone).

    Returns:
        The directory.
    """
    out = Path(directory)
    (out / "frames").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    if clip.masks_all is not None:
        (out / "masks_all").mkdir(parents=True, exist_ok=True)
    for t, (frame, mask) in enumerate(zip(clip.frames, clip.masks)):
        m8 = np.clip(np.rint(mask * 255.0), 0, 255).astype(np.uint8)
        if not cv2.imwrite(str(out / "frames" / f"{t:05d}.png"), frame) or not cv2.imwrite(
            str(out / "masks" / f"{t:05d}.png"), m8
        ):
            raise OSError(f"could not write frame {t} under {out}")
        if clip.masks_all is not None:
            a8 = np.clip(np.rint(clip.masks_all[t] * 255.0), 0, 255).astype(np.uint8)
            if not cv2.imwrite(str(out / "masks_all" / f"{t:05d}.png"), a8):
                raise OSError(f"could not write masks_all/{t:05d}.png under {out}")
    meta = {
        "name": clip.name,
        "n_frames": len(clip),
        "moving": [bool(m) for m in clip.moving],
        "params": clip.params,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    log.info("wrote clip %s (%d frames) to %s", clip.name, len(clip), out)
    return out


def read_clip(directory: str | Path) -> Clip:
    """Read a clip written by :func:`write_clip`; masks come back as float32 / 255."""
    d = Path(directory)
    meta_path = d / "meta.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} not found: not a clip folder")
    meta = json.loads(meta_path.read_text())
    n = int(meta["n_frames"])
    frames, masks = [], []
    for t in range(n):
        f = cv2.imread(str(d / "frames" / f"{t:05d}.png"), cv2.IMREAD_COLOR)
        m = cv2.imread(str(d / "masks" / f"{t:05d}.png"), cv2.IMREAD_GRAYSCALE)
        if f is None or m is None:
            raise FileNotFoundError(f"frame or mask {t:05d}.png missing under {d}")
        frames.append(f)
        masks.append(m.astype(np.float32) * np.float32(1.0 / 255.0))
    moving = [bool(v) for v in meta["moving"]]
    if len(moving) != n:
        raise ValueError(f"{meta_path}: {len(moving)} moving flags for {n} frames")
    masks_all = None
    if (d / "masks_all").is_dir():
        masks_all = []
        for t in range(n):
            m = cv2.imread(str(d / "masks_all" / f"{t:05d}.png"), cv2.IMREAD_GRAYSCALE)
            if m is None:
                raise FileNotFoundError(f"masks_all/{t:05d}.png missing under {d}")
            masks_all.append(m.astype(np.float32) * np.float32(1.0 / 255.0))
    return Clip(
        frames=frames,
        masks=masks,
        moving=moving,
        name=meta.get("name", d.name),
        params=meta.get("params", {}),
        masks_all=masks_all,
    )


SAMPLE_FRAMES = 150
"""Frames of :func:`sample_clip` by default: one 4-second sway and the start of the next."""


def sample_clip(*, width: int = 1280, height: int = 720, count: int = SAMPLE_FRAMES,
                fps: float = 30.0) -> Clip:
    """The built-in sample (:class:`~livebg.stages.sources.SampleSource`) as a clip,
    with its true alpha.

    The person sways the whole time, so every frame but the first counts as
    moving. Memory: about 6.5 MB per 1280x720 frame.
    """
    from livebg.stages.sources import SampleSource

    src = SampleSource(width=width, height=height, fps=fps, count=count)
    frames = [src.render(t) for t in range(count)]
    masks = [src.true_alpha(t) for t in range(count)]
    return Clip(frames=frames, masks=masks, moving=[False] + [True] * (count - 1),
                name="sample", params={"source": "sample", "size": [width, height], "fps": fps})


def load_pairs(data_dir: str | Path) -> list[tuple[Path, Path]]:
    """Image/mask pairs of a dataset folder: ``images/NAME.{jpg,png}`` with ``masks/NAME.png``.

    Images without a mask are skipped (logged). Sorted by name.
    """
    root = Path(data_dir)
    images = sorted(p for p in (root / "images").glob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)
    pairs = []
    for img in images:
        mask = root / "masks" / f"{img.stem}.png"
        if mask.is_file():
            pairs.append((img, mask))
        else:
            log.warning("no mask for %s, skipped", img)
    return pairs


def default_backgrounds() -> list[Path]:
    """The background photos shipped with the package."""
    return [DATA_DIR / n for n in DEFAULT_BACKGROUNDS if (DATA_DIR / n).is_file()]


def _background_paths(backgrounds: str | Path | Sequence[str | Path] | None) -> list[Path]:
    if backgrounds is None:
        paths = default_backgrounds()
    elif isinstance(backgrounds, (str, Path)) and Path(backgrounds).is_dir():
        folder = Path(backgrounds)
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
    elif isinstance(backgrounds, (str, Path)):
        paths = [Path(backgrounds)]
    else:
        paths = [Path(p) for p in backgrounds]
    if not paths:
        raise FileNotFoundError(f"no background images found in {backgrounds}")
    return paths


def _imread(path: Path, flags: int) -> np.ndarray:
    img = cv2.imread(str(path), flags)
    if img is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return img


def generate_clips(
    data_dir: str | Path,
    *,
    n_clips: int = 8,
    size: tuple[int, int] = (640, 360),
    seed: int = 0,
    backgrounds: str | Path | Sequence[str | Path] | None = None,
    **clip_kwargs,
) -> Iterator[Clip]:
    """Clips made from a dataset's image/mask pairs (see :func:`load_pairs`).

    Persons are taken in a seeded random order (repeating when ``n_clips``
    exceeds the pairs), backgrounds in turn; each clip gets its own seed drawn
    from ``seed``.

    Args:
        data_dir: folder with ``images/`` and ``masks/``.
        n_clips: number of clips.
        size: (W, H) of the frames.
        seed: master seed.
        backgrounds: None for the package's scenes, a folder, one image or a
            list of images.
        **clip_kwargs: passed to :func:`generate_clip` (n_still, noise_sigma, ...).

    Yields:
        :class:`Clip` named ``NNN_<person>_<background>``.
    """
    pairs = load_pairs(data_dir)
    if not pairs:
        raise FileNotFoundError(f"no image/mask pairs under {data_dir}")
    bgs = _background_paths(backgrounds)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pairs))
    clip_seeds = rng.integers(0, 2**31 - 1, size=n_clips)
    bg_cache: dict[Path, np.ndarray] = {}
    for i in range(n_clips):
        img_path, mask_path = pairs[order[i % len(pairs)]]
        bg_path = bgs[i % len(bgs)]
        if bg_path not in bg_cache:
            bg_cache[bg_path] = _imread(bg_path, cv2.IMREAD_COLOR)
        yield generate_clip(
            _imread(img_path, cv2.IMREAD_COLOR),
            _imread(mask_path, cv2.IMREAD_GRAYSCALE),
            bg_cache[bg_path],
            size=size,
            seed=int(clip_seeds[i]),
            name=f"{i:03d}_{img_path.stem}_{bg_path.stem}",
            **clip_kwargs,
        )


def generate_clips_from_dataset(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    n_clips: int = 8,
    size: tuple[int, int] = (640, 360),
    seed: int = 0,
    backgrounds: str | Path | Sequence[str | Path] | None = None,
    **clip_kwargs,
) -> list[Path]:
    """Generate clips with :func:`generate_clips` and write each to ``out_dir/<name>``.

    Returns:
        The clip folders, in order.
    """
    out = Path(out_dir)
    return [
        write_clip(clip, out / clip.name)
        for clip in generate_clips(
            data_dir, n_clips=n_clips, size=size, seed=seed, backgrounds=backgrounds, **clip_kwargs
        )
    ]
