"""Compositor: put the matted person over a new background.

    out = a * F + (1 - a) * B_new

``a`` is the matte, ``B_new`` the new background and ``F`` the person's own
colour. ``F`` is not the camera pixel: where the matte is soft (hair, motion
blur) the camera pixel still holds some of the old background, which would
show as a dark or light fringe. ``F`` is estimated with blur fusion (Forte &
Pitie, "Approximate fast foreground colour estimation", ICIP 2021):

    F_hat = blur(I * a) / blur(a)            smooth person colour
    B_hat = blur(I * (1 - a)) / blur(1 - a)  smooth old-background colour
    F = clip(F_hat + a * (I - a * F_hat - (1 - a) * B_hat), 0, 255)

run twice as in the paper: a wide pass, then a narrow one seeded with the
wide pass's F. The wide pass here is a least-squares fit of F and B per
window (``fit_fb``) rather than plain normalised convolution: in a soft edge
a few pixels wide both agree, but across a wide one (motion blur, hair)
blur(I a) / blur(a) still carries much of the old background.

Everything smooth lives on a grid of 4x4-pixel blocks: one pass over the
full-resolution pixels sums the block moments (``block_sums``), cv2 and
small numba kernels do the blurring at 1/4 to 1/32 resolution, and a second
full-resolution pass (``composite_bgr`` / ``composite_bgra``) copies
person pixels, leaves background pixels and samples the estimates
bilinearly only where 0 < a < 1. Blur mode's background is a normalised
convolution, blur(I w) / blur(w), of block sums weighted by the pixels'
"backgroundness" w (see ``CLEAR_T``), so the person does not bleed into it.

The compiled kernels live in :mod:`livebg.stages.compose.kernels`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from livebg.stages.compose.backgrounds import FITS, ImageBackground, VideoBackground, solid
from livebg.stages.compose.kernels import (BGRA_U32, block_sums, composite_bgr, composite_bgra, fit_fb, narrow_pass,
                    ratio, warm_up)

log = logging.getLogger(__name__)

MODES = ("blur", "image", "video", "color", "transparent", "none")

_BLOCK = 4  # pixels per side of a grid block (the numba kernels are written for 4)

# Blur strength 0..1 maps log-linearly to a Gaussian sigma of 0.4 % .. 10 %
# of the frame's short side (about 3 .. 72 px at 720p).
_SIGMA_MIN, _SIGMA_MAX = 0.004, 0.10
# Sigma of the colour estimates' wide pass, as a fraction of the short side
# (18 px at 720p). Wider separates colours across wider soft edges (motion
# blur); narrower follows a busy person's colours more closely. 0.025 was
# the best compromise on synthetic ramps and textured composites.
_FB_WIDE_SIGMA = 0.025
# ...computed on a grid as coarse as leaves that sigma >= 1 cell (16 px
# cells at 720p): quality was the same as at 8 px, at a third of the cost.
_FB_WIDE_MIN_CELLS = 1.0
# Weight given to the next-coarser estimate in a normalised convolution, in
# units of "fraction of the neighbourhood covered": where the local weight
# is below this the coarser estimate takes over instead of 0 / 0.
_EPS_COARSER = 1e-3
_EPS_GLOBAL = 1e-6
# Pull of the least-squares colour fit towards the normalised convolution,
# same units: only matters where a window holds almost no weight.
_FIT_MU = 1e-2


class Compositor:
    """Replace the background behind the person in a frame.

    Args:
        mode: "blur" (the frame's own background, blurred), "image",
            "video" (loops forever, one clip frame per ``compose`` call),
            "color", "transparent" (BGRA with the matte as alpha) or "none"
            (the frame untouched).
        blur: blur strength in [0, 1] for mode "blur"; 0 is barely blurred,
            1 very strong. The sigma is a fraction of the frame's short side
            (0.4 % to 10 %, log-linear), so it looks the same at any size.
        image: path of the image or video for modes "image" and "video";
            ignored by the other modes.
        fit: "cover" (scale to fill, centre-crop) or "fit" (scale to fit
            inside, pad with ``color``), for "image" and "video".
        color: BGR ints 0..255: the background of mode "color" and the
            padding of ``fit="fit"``.

    Raises:
        ValueError: an unknown mode or fit, an out-of-range blur or colour, no
            path for "image"/"video", or a file that cannot be read (the
            message names the path).

    Not safe for concurrent ``compose`` calls from several threads (it reuses
    internal buffers); use one Compositor per thread.
    """

    def __init__(
        self,
        mode: str,
        *,
        blur: float = 0.5,
        image: str | Path | None = None,
        fit: str = "cover",
        color: tuple[int, int, int] = (64, 177, 0),
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if fit not in FITS:
            raise ValueError(f"fit must be one of {FITS}, not {fit!r}")
        if isinstance(blur, bool) or not isinstance(blur, (int, float)) or not 0.0 <= blur <= 1.0:
            raise ValueError(f"blur must be a number in [0, 1], not {blur!r}")
        try:
            color = tuple(color)
        except TypeError:
            raise ValueError(f"color must be three BGR ints in 0..255, not {color!r}") from None
        if len(color) != 3 or not all(
            isinstance(c, (int, np.integer)) and not isinstance(c, bool) and 0 <= c <= 255
            for c in color
        ):
            raise ValueError(f"color must be three BGR ints in 0..255, not {color!r}")
        self._mode = mode
        self._blur = float(blur)
        self._color = tuple(int(c) for c in color)
        self._background: ImageBackground | VideoBackground | None = None
        if mode in ("image", "video"):
            if image is None:
                raise ValueError(f'mode "{mode}" needs a file: pass image=PATH')
            cls = ImageBackground if mode == "image" else VideoBackground
            self._background = cls(image, fit=fit, color=self._color)
        self._size: tuple[int, int] | None = None
        self._closed = False
        # Still frames (compose(still=True)): the alpha array the estimates
        # were made for, and the blurred background grid made with them.
        self._est_alpha: np.ndarray | None = None
        self._bg_cache: np.ndarray | None = None
        self._reusing = False
        if mode != "none":
            warm_up()

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def output_channels(self) -> int:
        """4 (BGRA) for mode "transparent", else 3 (BGR)."""
        return 4 if self._mode == "transparent" else 3

    def compose(self, frame: np.ndarray, alpha: np.ndarray, *, still: bool = False) -> np.ndarray:
        """Composite one frame.

        Args:
            frame: BGR uint8 (H, W, 3).
            alpha: float32 (H, W), 1 = person, 0 = background. Values outside
                [0, 1] are clipped; within half an output level (0.5 / 255)
                of 0 or 1 they count as 0 or 1.
            still: the caller vouches that ``frame`` shows the same still
                picture as the frame this very ``alpha`` array was last
                composed with (the still gate, :mod:`livebg.stages.still`):
                the colour estimates and the blurred background made then
                are reused, and only the blend runs. Ignored when this
                compositor's last estimates were made for another array.

        Returns:
            A new uint8 array (H, W, 3) BGR, or (H, W, 4) BGRA for
            "transparent": straight (not premultiplied) alpha, colour = the
            estimated person colour (a smooth extension of it where A = 0),
            A = round(alpha * 255). Mode "none" returns ``frame`` itself, not
            a copy. Where alpha is 1 the output is the frame's pixel exactly;
            where it is 0, the background's pixel exactly.

        Raises:
            TypeError: frame is not a uint8 array or alpha not a float32 one.
            ValueError: frame is not (H, W, 3) or alpha not (H, W).
            RuntimeError: the compositor was closed.
        """
        _check(frame, alpha)
        if self._closed:
            raise RuntimeError("Compositor is closed")
        if self._mode == "none":
            return frame
        flat, alpha, fb = self._estimate(frame, alpha, still)
        return self._blend(flat, alpha, fb)

    def compose_pair(self, frame: np.ndarray, alpha: np.ndarray, *,
                     still: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(output, cut-out): :meth:`compose`'s output and a BGRA cut-out of the person.

        The cut-out is what mode "transparent" gives (colour = the estimated
        person colour, A = round(alpha * 255)), made from the same colour
        estimates, so a second output with alpha (the overlay) costs one more
        full-resolution pass rather than a second compositor. In mode
        "transparent" both are the same array; in mode "none" the output is
        ``frame`` itself. ``still`` as for :meth:`compose`.
        """
        _check(frame, alpha)
        if self._closed:
            raise RuntimeError("Compositor is closed")
        flat, alpha, fb = self._estimate(frame, alpha, still)
        h, w = alpha.shape
        cutout = np.empty((h, w, 4), np.uint8)
        composite_bgra(flat, alpha, self._cls, fb, cutout.view(BGRA_U32).reshape(h, w))
        if self._mode == "transparent":
            return cutout, cutout
        return (frame if self._mode == "none" else self._blend(flat, alpha, fb)), cutout

    def close(self) -> None:
        """Release a video background and the buffers. Idempotent."""
        if self._background is not None:
            self._background.close()
        self._closed = True
        self._size = None
        self._color_frame = None
        self._est_alpha = self._bg_cache = None

    def __enter__(self) -> Compositor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals ---------------------------------------------------------

    def _estimate(self, frame: np.ndarray, alpha: np.ndarray, still: bool = False):
        """Block moments and colour estimates for this frame: (flat frame, alpha, fb).

        With ``still`` and estimates made for this same ``alpha`` array, those
        are returned as they are (see :meth:`compose`).
        """
        frame = np.ascontiguousarray(frame)
        h, w = alpha.shape
        flat = frame.reshape(h, w * 3)
        if still and alpha is self._est_alpha and self._size == (h, w):
            self._reusing = True
            return flat, alpha, self._fb
        self._reusing = False
        self._est_alpha = alpha  # the caller's array: identity is what ``still`` refers to
        alpha = np.ascontiguousarray(alpha)
        if self._size != (h, w):
            self._resize(h, w)
        block_sums(flat, alpha, self._fa, self._ba, self._a2, self._extra, self._clear, self._cls)
        return flat, alpha, self._foreground_background()

    def _blend(self, flat: np.ndarray, alpha: np.ndarray, fb: np.ndarray) -> np.ndarray:
        """The output of this compositor's mode from :meth:`_estimate`'s results."""
        h, w = alpha.shape
        out = np.empty((h, w, self.output_channels), np.uint8)
        if self._mode == "color":
            np.copyto(out, self._color_frame)
        elif self._mode == "blur":
            self._blurred_background(out)
        elif self._mode in ("image", "video"):
            np.copyto(out, self._background.frame(h, w))
        if self._mode == "transparent":
            composite_bgra(flat, alpha, self._cls, fb, out.view(BGRA_U32).reshape(h, w))
        else:
            composite_bgr(flat, alpha, self._cls, fb, out.reshape(h, w * 3))
        return out

    def _resize(self, h: int, w: int) -> None:
        """(Re)allocate the per-size buffers and derive the blur scales."""
        log.debug("compositor: output size %dx%d", w, h)
        self._size = (h, w)
        self._est_alpha = self._bg_cache = None
        gh, gw = -(-h // _BLOCK), -(-w // _BLOCK)
        self._fa = np.empty((gh, gw, 4), np.float32)
        self._ba = np.empty((gh, gw, 4), np.float32)
        self._a2 = np.empty((gh, gw), np.float32)
        self._extra = np.empty((gh, gw, 4), np.float32)
        self._clear = np.empty((gh, gw, 4), np.float32)
        self._cls = np.empty((gh, gw), np.uint8)
        self._fb = np.empty((6, gh, gw), np.float32)
        self._t = np.empty((gh, 4 * gw), np.float32)
        short = min(h, w)
        self._wide_scale = _pick_level(_FB_WIDE_SIGMA * short, gh, gw, _FB_WIDE_MIN_CELLS)
        if self._mode == "blur":
            sigma = short * _SIGMA_MIN * (_SIGMA_MAX / _SIGMA_MIN) ** self._blur
            self._bg_scale = _pick_level(sigma, gh, gw)
        if self._mode == "color":
            self._color_frame = solid(h, w, self._color)

    def _foreground_background(self) -> np.ndarray:
        """F_hat and B_hat on the block grid: float32 (6, gh, gw), planar, BGR each."""
        gh, gw = self._cls.shape
        level, sigma = self._wide_scale
        f0, sf = _normalized_blur(self._fa, level, sigma)
        b0, sb = _normalized_blur(self._ba, level, sigma)
        sa2 = cv2.GaussianBlur(
            _shrink(self._a2, level), (0, 0), sigma, borderType=cv2.BORDER_REFLECT
        )
        f1 = np.empty_like(f0)
        b1 = np.empty_like(b0)
        fit_fb(sf, sb, sa2.reshape(sf.shape[:2]), f0, b0, _FIT_MU, f1, b1)
        if level:
            f1 = cv2.resize(f1, (gw, gh), interpolation=cv2.INTER_LINEAR).reshape(gh, gw, 3)
            b1 = cv2.resize(b1, (gw, gh), interpolation=cv2.INTER_LINEAR).reshape(gh, gw, 3)
        narrow_pass(self._fa, self._a2, self._extra, f1, b1, np.float32(_EPS_COARSER),
                     self._t, self._fb)
        return self._fb

    def _blurred_background(self, out: np.ndarray) -> None:
        """Write the frame's background, blurred without the person, into out (H, W, 3).

        The blurred grid is kept: a still frame (``compose(still=True)``)
        only upsamples it again (cheaper than keeping a full-resolution copy
        of every frame's background).
        """
        if self._reusing and self._bg_cache is not None:
            b8 = self._bg_cache
        else:
            level, sigma = self._bg_scale
            b, _ = _normalized_blur(self._clear, level, sigma)
            b8 = np.empty(b.shape, np.uint8)
            np.add(b, np.float32(0.5), out=b)
            np.clip(b, 0, 255, out=b)
            b8[...] = b  # truncation after +0.5: round half up
            self._bg_cache = b8
        h, w = self._size
        r = cv2.resize(b8, (w, h), dst=out, interpolation=cv2.INTER_LINEAR)
        if r is not out:  # cv2 writes into a matching dst; never rely on it silently
            np.copyto(out, r)


def _check(frame: np.ndarray, alpha: np.ndarray) -> None:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        got = getattr(frame, "dtype", type(frame).__name__)
        raise TypeError(f"frame must be a uint8 numpy array, got {got}")
    if not isinstance(alpha, np.ndarray) or alpha.dtype != np.float32:
        got = getattr(alpha, "dtype", type(alpha).__name__)
        raise TypeError(f"alpha must be a float32 numpy array, got {got}")
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] < 1 or frame.shape[1] < 1:
        raise ValueError(f"frame must have shape (H, W, 3), got {frame.shape}")
    if alpha.shape != frame.shape[:2]:
        raise ValueError(
            f"alpha must have shape {frame.shape[:2]} (the frame's H, W), got {alpha.shape}"
        )


def _pick_level(sigma: float, gh: int, gw: int, min_cells: float = 1.5) -> tuple[int, float]:
    """Grid level for a Gaussian blur of ``sigma`` full-resolution pixels.

    Level k has cells of 4 * 2**k pixels. Returns (k, sigma in cells of level
    k) for the coarsest level where sigma is still >= ``min_cells`` cells (so
    a wide blur costs what a narrow one does) and the grid keeps >= 4 cells a
    side.
    """
    k = 0
    while sigma / (_BLOCK * 2 ** (k + 1)) >= min_cells and min(gh, gw) >> (k + 1) >= 4:
        k += 1
    return k, sigma / (_BLOCK * 2**k)


def _shrink(sums: np.ndarray, k: int) -> np.ndarray:
    """Mean over groups of 2**k x 2**k cells.

    float32 (h, w[, C <= 4]) -> (ceil(h / 2**k), ceil(w / 2**k)[, C]).

    cv2's INTER_AREA, one halving at a time (its exact-2x path is ~4x faster
    than one 4x step); with more than 4 channels it would be slow, or refuse
    an inexact factor, hence the sums' 4-channel layout.
    """
    for _ in range(k):
        h, w = sums.shape[:2]
        dh, dw = (h + 1) // 2, (w + 1) // 2
        shape = (dh, dw, *sums.shape[2:])
        sums = cv2.resize(sums, (dw, dh), interpolation=cv2.INTER_AREA).reshape(shape)
    return sums


def _normalized_blur(sums: np.ndarray, level: int, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Normalised convolution: blur(colour * weight) / blur(weight).

    Args:
        sums: float32 (gh, gw, 4) per block: [sum(colour * weight) BGR,
            sum(weight)], divided by the block area.
        level: grid level to work at (each level halves the grid).
        sigma: Gaussian sigma in cells of that level.

    Returns:
        (estimate, blurred): the BGR estimate, float32 (gh', gw', 3) with
        (gh', gw') = ceil((gh, gw) / 2**level), and the blurred sums
        (gh', gw', 4). Where there is ~no weight nearby (deep inside the
        person for the background, far from it for the person) the estimate
        falls back to the same one 4x wider, and that to the frame-wide
        weighted mean: it never divides by ~0.
    """
    sums = _shrink(sums, level)
    gh, gw = sums.shape[:2]
    blurred = cv2.GaussianBlur(sums, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    coarse = _shrink(sums, 2)
    ch, cw = coarse.shape[:2]
    total = coarse.reshape(-1, 4).sum(axis=0)
    fallback = np.empty((ch, cw, 3), np.float32)
    # No weight anywhere: the estimate is never shown, any colour will do.
    fallback[...] = total[:3] / total[3] if total[3] > 1e-6 * ch * cw else 128.0
    if min(ch, cw) >= 2:
        coarse = cv2.GaussianBlur(coarse, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
        ratio(coarse, fallback, np.float32(_EPS_GLOBAL), fallback)
    fallback = cv2.resize(fallback, (gw, gh), interpolation=cv2.INTER_LINEAR).reshape(gh, gw, 3)
    out = np.empty((gh, gw, 3), np.float32)
    ratio(blurred, fallback, np.float32(_EPS_COARSER), out)
    return out, blurred
