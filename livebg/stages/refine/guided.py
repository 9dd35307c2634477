"""Fast guided filter (He & Sun 2015) with a colour or grey guide, compiled with numba.

The filter fits, in every (2r+1)^2 window of a low-resolution copy of the
frame, the linear model ``q = A . I + b`` that best maps the guide ``I`` to the
input matte; the coefficients are averaged over windows, upsampled bilinearly
and applied to the full-resolution frame, so the output's edges follow the
frame's edges at full resolution while all fitting happens at low resolution.

The full-resolution pass (:func:`apply_coefficients`) upsamples the
coefficients along x on the few low-resolution rows only, then fuses the
y-interpolation, the dot product with the uint8 frame's pixels and the clip in
one vectorised loop: no full-resolution copy of the frame or of the
coefficients is made. Intermediates are reused across frames (:class:`Workspace`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np
from numba import njit

# ---------------------------------------------------------------------------
# Low resolution: products in numba, window sums by cv2.boxFilter (any channel
# count), per-window fits in numba. Windows are clipped at the borders and
# divided by their true pixel count.


def _inv_count(h: int, w: int, r: int) -> np.ndarray:
    """1 / (number of pixels of each clipped (2r+1)^2 window), (h, w) float32."""
    ny = np.minimum(np.arange(h) + r, h - 1) - np.maximum(np.arange(h) - r, 0) + 1
    nx = np.minimum(np.arange(w) + r, w - 1) - np.maximum(np.arange(w) - r, 0) + 1
    return (1.0 / np.outer(ny, nx)).astype(np.float32)


def _box_sum(x: np.ndarray, r: int, out: np.ndarray) -> np.ndarray:
    """out = sum over each (2r+1)^2 window of x (h, w, c) float32, zero outside."""
    s = cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), dst=out.reshape(x.shape[0], x.shape[1], -1)
                      if x.shape[2] > 1 else out, normalize=False, borderType=cv2.BORDER_CONSTANT)
    return s.reshape(x.shape)


class Workspace:
    """Buffers reused from frame to frame.

    Fresh large arrays cost page faults on first touch (measured: the same
    kernels ran 2-5x slower on fresh memory than on reused buffers), so every
    intermediate lives here, allocated once per size.
    """

    def __init__(self):
        self._bufs: dict[tuple, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
        key = (name, tuple(shape), np.dtype(dtype).str)
        buf = self._bufs.get(key)
        if buf is None:
            if len(self._bufs) > 64:  # sizes changed many times: start over
                self._bufs.clear()
            buf = self._bufs[key] = np.empty(shape, dtype)
        return buf


@njit(cache=True, nogil=True, fastmath=True)
def _scale(x, inv, out):
    """out (h, w, c) = x (h, w, c) * inv (h, w) per pixel."""
    h, w, c = x.shape
    for i in range(h):
        for j in range(w):
            for k in range(c):
                out[i, j, k] = x[i, j, k] * inv[i, j]
    return out


@njit(cache=True, nogil=True, fastmath=True)
def _products_color(guide, p, m):
    h, w, _ = guide.shape
    for i in range(h):
        for j in range(w):
            b0 = guide[i, j, 0]
            g0 = guide[i, j, 1]
            r0 = guide[i, j, 2]
            q = p[i, j]
            m[i, j, 0] = b0
            m[i, j, 1] = g0
            m[i, j, 2] = r0
            m[i, j, 3] = q
            m[i, j, 4] = b0 * b0
            m[i, j, 5] = b0 * g0
            m[i, j, 6] = b0 * r0
            m[i, j, 7] = g0 * g0
            m[i, j, 8] = g0 * r0
            m[i, j, 9] = r0 * r0
            m[i, j, 10] = b0 * q
            m[i, j, 11] = g0 * q
            m[i, j, 12] = r0 * q
    return m


@njit(cache=True, nogil=True, fastmath=True)
def _fit_color(sums, inv, eps, ab):
    """Per-window (A_b, A_g, A_r, b) from the 13 window sums of _products_color."""
    h, w, _ = sums.shape
    for i in range(h):
        for j in range(w):
            n = inv[i, j]
            u0 = sums[i, j, 0] * n
            u1 = sums[i, j, 1] * n
            u2 = sums[i, j, 2] * n
            mp = sums[i, j, 3] * n
            # covariance of the guide + eps I (symmetric 3x3)
            a00 = sums[i, j, 4] * n - u0 * u0 + eps
            a01 = sums[i, j, 5] * n - u0 * u1
            a02 = sums[i, j, 6] * n - u0 * u2
            a11 = sums[i, j, 7] * n - u1 * u1 + eps
            a12 = sums[i, j, 8] * n - u1 * u2
            a22 = sums[i, j, 9] * n - u2 * u2 + eps
            c0 = sums[i, j, 10] * n - u0 * mp
            c1 = sums[i, j, 11] * n - u1 * mp
            c2 = sums[i, j, 12] * n - u2 * mp
            # inverse by cofactors
            i00 = a11 * a22 - a12 * a12
            i01 = a02 * a12 - a01 * a22
            i02 = a01 * a12 - a02 * a11
            i11 = a00 * a22 - a02 * a02
            i12 = a01 * a02 - a00 * a12
            i22 = a00 * a11 - a01 * a01
            idet = 1.0 / (a00 * i00 + a01 * i01 + a02 * i02)
            x0 = (i00 * c0 + i01 * c1 + i02 * c2) * idet
            x1 = (i01 * c0 + i11 * c1 + i12 * c2) * idet
            x2 = (i02 * c0 + i12 * c1 + i22 * c2) * idet
            ab[i, j, 0] = x0
            ab[i, j, 1] = x1
            ab[i, j, 2] = x2
            ab[i, j, 3] = mp - x0 * u0 - x1 * u1 - x2 * u2
    return ab


@njit(cache=True, nogil=True, fastmath=True)
def _products_grey(guide, p, m):
    h, w, _ = guide.shape
    for i in range(h):
        for j in range(w):
            g = (guide[i, j, 0] + guide[i, j, 1] + guide[i, j, 2]) * np.float32(1.0 / 3.0)
            q = p[i, j]
            m[i, j, 0] = g
            m[i, j, 1] = q
            m[i, j, 2] = g * g
            m[i, j, 3] = g * q
    return m


@njit(cache=True, nogil=True, fastmath=True)
def _fit_grey(sums, inv, eps, ab):
    """Per-window (A/3, A/3, A/3, b) for the grey guide (mean of BGR).

    The grey guide is the channel mean, so the full-resolution pass is the same
    as for a colour guide with three equal slopes.
    """
    h, w, _ = sums.shape
    for i in range(h):
        for j in range(w):
            n = inv[i, j]
            ug = sums[i, j, 0] * n
            up = sums[i, j, 1] * n
            a = (sums[i, j, 3] * n - ug * up) / (sums[i, j, 2] * n - ug * ug + eps)
            ab[i, j, 0] = a / 3.0
            ab[i, j, 1] = a / 3.0
            ab[i, j, 2] = a / 3.0
            ab[i, j, 3] = up - a * ug
    return ab


def coefficients(guide: np.ndarray, p: np.ndarray, radius: int, eps: float,
                 color: bool = True, ws: Workspace | None = None) -> np.ndarray:
    """Window-averaged guided-filter coefficients (h, w, 4): (A_b, A_g, A_r, b)."""
    ws = ws or Workspace()
    h, w = p.shape
    r = int(radius)
    inv = _inv_count(h, w, r)
    nc = 13 if color else 4
    m = ws.get("products", (h, w, nc))
    sums = ws.get("sums", (h, w, nc))
    ab = ws.get("ab", (h, w, 4))
    if color:
        _products_color(guide, p, m)
        _fit_color(_box_sum(m, r, sums), inv, np.float32(eps), ab)
    else:
        _products_grey(guide, p, m)
        _fit_grey(_box_sum(m, r, sums), inv, np.float32(eps), ab)
    return _scale(_box_sum(ab, r, ws.get("ab_sums", (h, w, 4))), inv, ws.get("coef", (h, w, 4)))


# ---------------------------------------------------------------------------
# Full resolution: fused bilinear upsampling of the coefficients + apply + clip


@njit(cache=True, nogil=True)
def _axis_taps(n_out, n_in):
    """Bilinear taps (index0, index1, weight1) with cv2.resize's half-pixel convention."""
    i0 = np.empty(n_out, np.int32)
    i1 = np.empty(n_out, np.int32)
    wt = np.empty(n_out, np.float32)
    scale = n_in / n_out
    for o in range(n_out):
        x = (o + 0.5) * scale - 0.5
        if x < 0.0:
            x = 0.0
        k = int(x)
        if k > n_in - 1:
            k = n_in - 1
        i0[o] = k
        i1[o] = min(k + 1, n_in - 1)
        wt[o] = x - k
    return i0, i1, wt


@njit(cache=True, nogil=True, fastmath=True)
def _apply_rows(image, cx, xp, lo, out):
    """Vertical bilinear step fused with the fit, over flat contiguous rows.

    image (H, 3W) uint8: the BGR frame's rows, read interleaved (a whole
    stride-3 group, which vectorises: no per-channel copies of the frame);
    cx (h, 4W): the coefficients already upsampled along x, interleaved
    (A_b, A_g, A_r, b); xp (4, h, W) scratch for their planes; lo: the
    deadband, out = clip((q - lo) / (1 - 2 lo), 0, 1); out (H, W) float32.
    """
    hh, ww = out.shape
    h = cx.shape[0]
    for a in range(h):
        r = cx[a]
        q0, q1, q2, q3 = xp[0, a], xp[1, a], xp[2, a], xp[3, a]
        for j in range(ww):
            q0[j] = r[4 * j]
            q1[j] = r[4 * j + 1]
            q2[j] = r[4 * j + 2]
            q3[j] = r[4 * j + 3]
    y0, y1, wy = _axis_taps(hh, h)
    s = np.float32(1.0 / 255.0)
    gain = np.float32(1.0 / (1.0 - 2.0 * lo))
    lo = np.float32(lo)
    p0, p1, p2, p3 = xp[0], xp[1], xp[2], xp[3]
    for i in range(hh):
        a = y0[i]
        b = y1[i]
        t = wy[i]
        a0, a1, a2, a3 = p0[a], p1[a], p2[a], p3[a]
        b0, b1, b2, b3 = p0[b], p1[b], p2[b], p3[b]
        fr = image[i]
        o = out[i]
        for j in range(ww):
            c0 = a0[j] + t * (b0[j] - a0[j])
            c1 = a1[j] + t * (b1[j] - a1[j])
            c2 = a2[j] + t * (b2[j] - a2[j])
            c3 = a3[j] + t * (b3[j] - a3[j])
            q = (c0 * np.float32(fr[3 * j]) + c1 * np.float32(fr[3 * j + 1])
                 + c2 * np.float32(fr[3 * j + 2])) * s + c3
            o[j] = min(max((q - lo) * gain, np.float32(0.0)), np.float32(1.0))
    return out


def apply_coefficients(image: np.ndarray, coef: np.ndarray,
                       out: np.ndarray | None = None, ws: Workspace | None = None,
                       deadband: float = 0.0) -> np.ndarray:
    """clip(A . image/255 + b) at full resolution, (A, b) upsampled bilinearly from coef (h, w, 4).

    With ``deadband`` d in [0, 0.5): clip((A . image/255 + b - d) / (1 - 2d), 0, 1),
    so values within d of 0 or 1 become exactly 0 or 1 (see
    :attr:`GuidedOptions.deadband`); 0.5 stays 0.5.

    Upsampling is separable: along x by one ``cv2.resize`` of the h
    low-resolution rows, along y inside the numba loop, which reads the
    uint8 frame as it is, so every full-resolution access is contiguous and
    vectorises and no full-resolution copy of the frame is made.
    """
    ws = ws or Workspace()
    hh, ww = image.shape[:2]
    h, w = coef.shape[:2]
    cx = cv2.resize(coef, (ww, h), dst=ws.get("coef_x", (h, ww, 4)),
                    interpolation=cv2.INTER_LINEAR)
    if out is None:
        out = np.empty((hh, ww), np.float32)
    image = np.ascontiguousarray(image)
    if not 0.0 <= deadband < 0.5:
        raise ValueError(f"deadband must lie in [0, 0.5), not {deadband!r}")
    return _apply_rows(image.reshape(hh, ww * 3), cx.reshape(h, ww * 4),
                       ws.get("coef_planes", (4, h, ww)), float(deadband), out)


# ---------------------------------------------------------------------------
# Public helpers


def low_size(shape: tuple[int, ...], long_side: int) -> tuple[int, int]:
    """(w, h) of a copy whose long side is about ``long_side``, by an integer factor.

    Integer factors keep ``cv2.resize(INTER_AREA)`` on its fast path; tiny
    frames are not upsampled.
    """
    h, w = shape[:2]
    f = max(1, int(round(max(h, w) / long_side)))
    return max(1, int(round(w / f))), max(1, int(round(h / f)))


def downsample(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """BGR uint8 -> float32 BGR in [0, 1] at ``size`` (w, h), area-averaged.

    Exact halvings go through ``INTER_LINEAR`` (which then averages 2x2
    blocks, several times faster than ``INTER_AREA``); the rest by ``INTER_AREA``.
    """
    small = image
    while (small.shape[1] == 2 * size[0] and small.shape[0] == 2 * size[1]) or (
            small.shape[1] >= 4 * size[0] and small.shape[1] % 2 == 0
            and small.shape[0] % 2 == 0 and small.shape[1] // 2 % size[0] == 0
            and small.shape[0] // 2 % size[1] == 0):
        small = cv2.resize(small, (small.shape[1] // 2, small.shape[0] // 2),
                           interpolation=cv2.INTER_LINEAR)
    if (small.shape[1], small.shape[0]) != size:
        small = cv2.resize(small, size, interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) * np.float32(1.0 / 255.0)


def fast_guided_filter(image: np.ndarray, guide_low: np.ndarray, p_low: np.ndarray, *,
                       radius: int, eps: float, color: bool = True,
                       out: np.ndarray | None = None, ws: Workspace | None = None,
                       deadband: float = 0.0) -> np.ndarray:
    """Fast guided filter of a low-resolution matte, guided by the full frame.

    Args:
        image: BGR uint8 (H, W, 3), the full-resolution guide.
        guide_low: float32 (h, w, 3) in [0, 1], the frame at low resolution.
        p_low: float32 (h, w), the matte to filter at that resolution.
        radius: window radius in low-resolution pixels.
        eps: regularisation (in squared [0, 1] intensity units).
        color: colour guide (3x3 fit per window) or grey (channel mean).
        out: optional float32 (H, W) buffer.
        ws: buffers to reuse across calls.
        deadband: values within this of 0 or 1 become 0 or 1 (see
            :func:`apply_coefficients`).

    Returns:
        float32 (H, W) in [0, 1].
    """
    p_low = np.ascontiguousarray(p_low, dtype=np.float32)
    ws = ws or Workspace()
    coef = coefficients(guide_low, p_low, radius, eps, color, ws)
    return apply_coefficients(image, coef, out, ws, deadband)


@dataclass(frozen=True)
class GuidedOptions:
    """Options of :class:`GuidedRefiner`.

    Attributes:
        color: colour guide (default) or grey.
        long_side: long side of the low-resolution copy, in pixels.
        radius: window radius at low resolution, in pixels.
        eps: regularisation.
        deadband: alpha within this of 0 or 1 is made exactly 0 or 1, and
            the rest stretched to stay continuous: clip((a - d) / (1 - 2d)),
            so 0.5 stays 0.5 and no value moves by more than d. The fit
            follows the camera's noise, which leaves faint haze around the
            person (on the sample at 720p, 6-16 % of the frame between 0.002
            and 0.05, where the true alpha has 0.2 %); every such pixel is a
            blend for the compositor. 1/64: at most 4 grey levels on a
            full-contrast edge.
    """

    color: bool = True
    long_side: int = 320
    radius: int = 2
    eps: float = 1e-3
    deadband: float = 1 / 64


class GuidedRefiner:
    """``guided``: the net's probability through a fast guided filter. No state.

    The probability is resized to a low-resolution copy of the frame (long side
    about ``long_side`` px) and filtered there with the frame as guide; the
    coefficients are applied at full resolution. The radius is in
    low-resolution pixels, so the filter is scale-relative (at 1280x720:
    factor 4, radius 8 full-resolution pixels).

    Args:
        options: see :class:`GuidedOptions` (None: the defaults).
    """

    name = "guided"

    def __init__(self, options: GuidedOptions | None = None):
        o = self.opt = options or GuidedOptions()
        self.color, self.long_side, self.radius, self.eps = o.color, o.long_side, o.radius, o.eps
        self._ws = Workspace()
        self._t: dict[str, float] = {}

    def refine(self, image: np.ndarray, probability: np.ndarray,
               features: np.ndarray | None = None) -> np.ndarray:
        """Alpha float32 (H, W) in [0, 1] for a BGR uint8 frame (H, W, 3)."""
        t0 = time.perf_counter()
        size = low_size(image.shape, self.long_side)
        guide = downsample(image, size)
        p = cv2.resize(np.asarray(probability, np.float32), size, interpolation=cv2.INTER_LINEAR)
        t1 = time.perf_counter()
        alpha = fast_guided_filter(image, guide, p, radius=self.radius, eps=self.eps,
                                   color=self.color, ws=self._ws, deadband=self.opt.deadband)
        t2 = time.perf_counter()
        self._t = {"downsample": (t1 - t0) * 1e3, "upsample": (t2 - t1) * 1e3}
        return alpha

    def reset(self) -> None:
        pass

    def timings(self) -> dict[str, float]:
        """Milliseconds of the last call's sub-steps."""
        return dict(self._t)
