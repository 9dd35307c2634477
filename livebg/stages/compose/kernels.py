"""The compositor's compiled kernels (numba, cached on disk, GIL released).

Everything smooth lives on a grid of 4x4-pixel blocks: one pass over the
full-resolution pixels sums the block moments (:func:`block_sums`), small
kernels here and cv2 in :mod:`livebg.stages.compose.compose` blur at 1/4 to 1/32
resolution, and a second full-resolution pass (:func:`composite_bgr` /
:func:`composite_bgra`) copies person pixels, leaves background pixels and
samples the colour estimates bilinearly only where 0 < a < 1.

Inner loops run over contiguous 1D rows (planar buffers) so LLVM vectorises
them; indexing 2D arrays per channel inside a loop does not vectorise.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# BGRA bytes seen as one little-endian uint32 per pixel (B in the low byte),
# so the BGRA kernel writes a pixel with one store.
BGRA_U32 = np.dtype("<u4")

# Blur mode weighs each pixel's colour by max(0, 1 - a / CLEAR_T), not by
# 1 - a: a soft-edge pixel at a = 0.5 is half person, and with 1 - a weights
# those pixels alone left a visible glow around a bright person on a dark
# wall. Pixels above the threshold are left out; below it at most
# CLEAR_T / 4 of a pixel's weight is person colour, and residual alpha noise
# of a few percent in the background still counts as background.
CLEAR_T = 0.1
# Soft runs fewer than this many uniform blocks apart are processed as one
# span (see ``_soft_spans``).
SPAN_GAP = 8


@njit(cache=True, nogil=True)
def ratio(sums, fallback, eps, out):
    """out = (sums[..., :3] + eps * fallback) / (sums[..., 3] + eps).

    sums: (h, w, 4); fallback, out: (h, w, 3); float32. ``out`` may be ``fallback``.
    """
    h, w = out.shape[0], out.shape[1]
    for y in range(h):
        for x in range(w):
            d = np.float32(1) / (sums[y, x, 3] + eps)
            for c in range(3):
                out[y, x, c] = (sums[y, x, c] + eps * fallback[y, x, c]) * d


@njit(cache=True, nogil=True)
def fit_fb(sf, sb, sa2, f0, b0, mu, f1, b1):
    """Least-squares person and background colours over each window.

    Solves, per cell and channel, min over F, B of
    sum_w (I - a F - (1 - a) B)^2 + mu (|F - f0|^2 + |B - b0|^2): the
    colours that best explain the window's pixels under the compositing
    equation. Where the window holds only a = 0 and a = 1 this is the
    normalised convolution (f0, b0); where alpha is fractional it separates
    the two colours instead of averaging the old background into the
    person, as blur(I a) / blur(a) does across wide soft edges.

    sf: (h, w, 4) blurred [S_Ia BGR, S_a]; sb: (h, w, 4) blurred
    [S_I(1-a) BGR, S_(1-a)]; sa2: (h, w) blurred S_a2; f0, b0: (h, w, 3)
    normalised-convolution estimates; mu: regulariser, in per-pixel weight
    units. Writes f1, b1 (h, w, 3) in 0..255. Arrays float32.
    """
    h, w = sa2.shape
    for y in range(h):
        for x in range(w):
            a1 = np.float64(sf[y, x, 3])
            a2 = np.float64(sa2[y, x])
            saa = max(a2, 0.0) + mu
            sab = max(a1 - a2, 0.0)
            sbb = max(np.float64(sb[y, x, 3]) - a1 + a2, 0.0) + mu
            det = max(saa * sbb - sab * sab, mu * mu)
            for c in range(3):
                rf = sf[y, x, c] + mu * f0[y, x, c]
                rb = sb[y, x, c] + mu * b0[y, x, c]
                f1[y, x, c] = min(max((sbb * rf - sab * rb) / det, 0.0), 255.0)
                b1[y, x, c] = min(max((saa * rb - sab * rf) / det, 0.0), 255.0)


@njit(cache=True, nogil=True)
def narrow_pass(fa, a2, extra, f1, b1, eps, t, fb):
    """Blur fusion's second, narrow pass, on the block grid.

    The block sum of a * F1, with F1 = f1 + a (I - a f1 - (1 - a) b1) the
    first pass's foreground and f1, b1 constant over a block, is exactly
    f1 (S_a - S_a3) + S_Ia2 - b1 (S_a2 - S_a3). Those sums and S_a are
    blurred with a 3x3 binomial (Gaussian sigma ~0.7 cells: the finest the
    grid holds; borders reflected, as cv2.BORDER_REFLECT) and normalised:

        fb = [clip((blur(S_F1a) + eps f1) / (blur(S_a) + eps), 0, 255), b1]

    fa: (gh, gw, 4) [S_Ia BGR, S_a]; a2: (gh, gw) S_a2; extra: (gh, gw, 4)
    [S_Ia2 BGR, S_a3]; f1, b1: (gh, gw, 3) first-pass estimates; t: scratch
    (gh, 4 gw); writes fb (6, gh, gw), planar, so the compositor's bilinear
    sampling reads contiguous rows. All float32. Loops run over flat rows
    (2D/3D indexing does not vectorise).
    """
    gh, gw = a2.shape
    q = np.float32(0.25)
    hlf = np.float32(0.5)
    one = np.float32(1)
    zero = np.float32(0)
    top = np.float32(255)
    for y in range(gh):
        far = fa[y].reshape(4 * gw)
        exr = extra[y].reshape(4 * gw)
        f1r = f1[y].reshape(3 * gw)
        b1r = b1[y].reshape(3 * gw)
        a2r = a2[y]
        tr = t[y]
        for x in range(gw):
            sa = far[4 * x + 3]
            d3 = sa - exr[4 * x + 3]
            d23 = a2r[x] - exr[4 * x + 3]
            for c in range(3):
                tr[4 * x + c] = f1r[3 * x + c] * d3 + exr[4 * x + c] - b1r[3 * x + c] * d23
            tr[4 * x + 3] = sa
    v = np.empty(4 * gw, np.float32)
    u = np.empty(4 * gw, np.float32)
    n = 4 * gw
    for y in range(gh):
        r0 = t[max(y - 1, 0)]
        r1 = t[y]
        r2 = t[min(y + 1, gh - 1)]
        for i in range(n):
            v[i] = q * r0[i] + hlf * r1[i] + q * r2[i]
        if gw == 1:
            for i in range(4):
                u[i] = v[i]
        else:
            for i in range(4):
                u[i] = q * v[i] + hlf * v[i] + q * v[i + 4]
                u[n - 4 + i] = q * v[n - 8 + i] + hlf * v[n - 4 + i] + q * v[n - 4 + i]
            vl = v[: n - 8]
            vm = v[4 : n - 4]
            vr = v[8:]
            um = u[4 : n - 4]
            for i in range(n - 8):
                um[i] = q * vl[i] + hlf * vm[i] + q * vr[i]
        f1r = f1[y].reshape(3 * gw)
        b1r = b1[y].reshape(3 * gw)
        # One loop over all channels: whole interleave groups load vectorised.
        fo0, fo1, fo2 = fb[0, y], fb[1, y], fb[2, y]
        bo0, bo1, bo2 = fb[3, y], fb[4, y], fb[5, y]
        for x in range(gw):
            d = one / (u[4 * x + 3] + eps)
            fo0[x] = min(max((u[4 * x] + eps * f1r[3 * x]) * d, zero), top)
            fo1[x] = min(max((u[4 * x + 1] + eps * f1r[3 * x + 1]) * d, zero), top)
            fo2[x] = min(max((u[4 * x + 2] + eps * f1r[3 * x + 2]) * d, zero), top)
            bo0[x] = b1r[3 * x]
            bo1[x] = b1r[3 * x + 1]
            bo2[x] = b1r[3 * x + 2]


@njit(cache=True, nogil=True, inline="always")
def _runs(cls_row, runs):
    """Split a row of block classes into runs.

    Writes runs[i] = (first block, end block, class); returns the number of runs.
    """
    gw = cls_row.shape[0]
    n = 0
    bx = 0
    while bx < gw:
        k = cls_row[bx]
        bx1 = bx + 1
        while bx1 < gw and cls_row[bx1] == k:
            bx1 += 1
        runs[n, 0] = bx
        runs[n, 1] = bx1
        runs[n, 2] = k
        n += 1
        bx = bx1
    return n


@njit(cache=True, nogil=True, inline="always")
def _soft_spans(cls_row, spans, gap):
    """Spans of blocks holding every soft block (class 2) of a row of block classes.

    Soft runs less than ``gap`` uniform blocks apart share a span: a span's
    fixed cost outweighs a few uniform blocks taken through the soft path,
    which handles them exactly (alpha 0 or 1 there). Writes spans[i] =
    (first block, end block); returns the number of spans.
    """
    gw = cls_row.shape[0]
    n = 0
    bx = 0
    while bx < gw:
        if cls_row[bx] != 2:
            bx += 1
            continue
        b0 = bx
        b1 = bx + 1  # end of the last soft block seen
        bx += 1
        while bx < gw and bx - b1 < gap:
            if cls_row[bx] == 2:
                b1 = bx + 1
            bx += 1
        spans[n, 0] = b0
        spans[n, 1] = b1
        n += 1
        bx = b1
    return n


@njit(cache=True, nogil=True)
def block_sums(frame, alpha, fa, ba, a2, extra, clear, cls):
    """Per-block moments of one frame on a grid of 4x4-pixel blocks.

    frame: uint8 (H, 3W) (the BGR frame, rows flattened); alpha: float32
    (H, W), clipped to [0, 1] and snapped to 0 / 1 within half a level (NaN
    counts as 0). Writes, on the (gh, gw) = ceil((H, W) / 4) grid, sums
    divided by the full block area (16):
        fa: [S_Ia BGR, S_a]    ba: [S_I(1-a) BGR, S_(1-a)]
        a2: S_a2               extra: [S_Ia2 BGR, S_a3]
        clear: [S_Iw BGR, S_w] with w = max(0, 1 - a / 0.1): the
            background weight for blur mode (see CLEAR_T)
        cls: 0 where the block's alpha is all 0, 1 where all 1, else 2.
    Uniform blocks only cost column sums; spans of soft blocks
    (``_soft_spans``) add per-column moment sums. All inner loops are
    branch-free over contiguous 1D rows, so LLVM vectorises them (2D
    ``[i, c]`` indexing and single-channel stride-3/4 accesses do not).
    """
    h, w = alpha.shape
    gh, gw = cls.shape
    lo = np.float32(0.5 / 255)
    hi = np.float32(1 - 0.5 / 255)
    inv = np.float32(1 / 16)
    zero = np.float32(0)
    one = np.float32(1)
    inv_t = np.float32(1 / CLEAR_T)
    # Column sums over a block row, padded to whole blocks (the padding stays 0).
    col_i = np.zeros(12 * gw, np.uint16)  # 4 rows x 255 fits
    col_a = np.zeros(4 * gw, np.float32)
    bs_i = np.empty((3, gw), np.float32)  # per block: S_I BGR
    bs_b, bs_g, bs_r = bs_i[0], bs_i[1], bs_i[2]
    bs_a = np.empty(gw, np.float32)  # S_a
    bs_n = np.empty(gw, np.float32)  # pixel count
    runs = np.empty((gw, 3), np.int64)
    # Soft runs: per-column sums [S_Ia BGR, S_Ia2 BGR, S_a2, S_a3, S_Iw BGR, S_w].
    acc = np.empty((12, 4 * gw), np.float32)
    ab = np.empty(4 * gw, np.float32)
    a2b = np.empty(4 * gw, np.float32)
    wb = np.empty(4 * gw, np.float32)
    pl = np.empty((3, 4 * gw), np.float32)  # the row's colours, planar
    s = np.empty((12, gw), np.float32)  # a soft span's block sums
    for by in range(gh):
        y0 = by * 4
        y1 = min(y0 + 4, h)
        for i in range(3 * w):
            col_i[i] = 0
        for x in range(w):
            col_a[x] = 0
        for y in range(y0, y1):
            # 0-based loops over 1D row views vectorise; offset indexing does not.
            fr = frame[y]
            for i in range(3 * w):
                col_i[i] += np.uint16(fr[i])
            ar = alpha[y]
            for x in range(w):
                a = ar[x]
                a = a if a > lo else zero
                a = one if a >= hi else a
                col_a[x] += a
        # Flat 1D rows: [4 * bx + c] stores vectorise, [bx, c] ones do not (~5x).
        fa_r = fa[by].reshape(4 * gw)
        ba_r = ba[by].reshape(4 * gw)
        ex_r = extra[by].reshape(4 * gw)
        cl_r = clear[by].reshape(4 * gw)
        a2_r = a2[by]
        cls_r = cls[by]
        rows = y1 - y0
        # Block sums, then every block's outputs as if it were uniform (soft
        # blocks are overwritten below): branch-free per-block loops, not a
        # branchy one doing a block's 20 stores at a time.
        for bx in range(gw):
            j = 12 * bx
            s0 = np.int32(col_i[j]) + np.int32(col_i[j + 3])
            s0 += np.int32(col_i[j + 6]) + np.int32(col_i[j + 9])
            s1 = np.int32(col_i[j + 1]) + np.int32(col_i[j + 4])
            s1 += np.int32(col_i[j + 7]) + np.int32(col_i[j + 10])
            s2 = np.int32(col_i[j + 2]) + np.int32(col_i[j + 5])
            s2 += np.int32(col_i[j + 8]) + np.int32(col_i[j + 11])
            bs_b[bx] = np.float32(s0)
            bs_g[bx] = np.float32(s1)
            bs_r[bx] = np.float32(s2)
            x0 = 4 * bx
            bs_a[bx] = col_a[x0] + col_a[x0 + 1] + col_a[x0 + 2] + col_a[x0 + 3]
            bs_n[bx] = np.float32(rows * (min(x0 + 4, w) - x0))
        # Every block's outputs as if it were uniform (a = 0 or 1 throughout;
        # soft blocks are overwritten below): a branch-free loop.
        for bx in range(gw):
            n = bs_n[bx]
            sa = bs_a[bx]
            full = sa == n  # a = 1 on the whole block
            none = sa == zero  # a = 0 on the whole block
            cls_r[bx] = 0 if none else (1 if full else 2)
            mf = one if full else zero
            mz = one if none else zero
            ib, ig, ir = bs_b[bx], bs_g[bx], bs_r[bx]
            o = 4 * bx
            fa_r[o] = (ib * mf) * inv
            fa_r[o + 1] = (ig * mf) * inv
            fa_r[o + 2] = (ir * mf) * inv
            fa_r[o + 3] = sa * inv
            ba_r[o] = (ib - ib * mf) * inv
            ba_r[o + 1] = (ig - ig * mf) * inv
            ba_r[o + 2] = (ir - ir * mf) * inv
            ba_r[o + 3] = (n - sa) * inv
            ex_r[o] = (ib * mf) * inv
            ex_r[o + 1] = (ig * mf) * inv
            ex_r[o + 2] = (ir * mf) * inv
            ex_r[o + 3] = (n * mf) * inv
            cl_r[o] = (ib * mz) * inv
            cl_r[o + 1] = (ig * mz) * inv
            cl_r[o + 2] = (ir * mz) * inv
            cl_r[o + 3] = (n * mz) * inv
            a2_r[bx] = (n * mf) * inv
        nr = _soft_spans(cls_r, runs, SPAN_GAP)
        for r in range(nr):
            b0 = runs[r, 0]
            b1 = runs[r, 1]
            x0 = 4 * b0
            n = min(4 * b1, w) - x0
            nb = b1 - b0
            # Zeroed to whole blocks: a partial last block sums zeros.
            for k in range(12):
                row = acc[k]
                for i in range(4 * nb):
                    row[i] = 0
            sa2_c = acc[6]
            sa3_c = acc[7]
            sw_c = acc[11]
            pb, pg, pr = pl[0], pl[1], pl[2]
            for y in range(y0, y1):
                ar = alpha[y, x0 : x0 + n]
                fr = frame[y, 3 * x0 : 3 * (x0 + n)]
                # Deinterleave once (a full stride-3 group LLVM vectorises);
                # the moment loops below then run over contiguous rows.
                for i in range(n):
                    pb[i] = np.float32(fr[3 * i])
                    pg[i] = np.float32(fr[3 * i + 1])
                    pr[i] = np.float32(fr[3 * i + 2])
                for i in range(n):
                    a = ar[i]
                    a = a if a > lo else zero
                    a = one if a >= hi else a
                    aa = a * a
                    wz = max(one - a * inv_t, zero)
                    ab[i] = a
                    a2b[i] = aa
                    wb[i] = wz
                    sa2_c[i] += aa
                    sa3_c[i] += aa * a
                    sw_c[i] += wz
                for c in range(3):
                    v_c = pl[c]
                    p_c = acc[c]
                    q_c = acc[3 + c]
                    z_c = acc[8 + c]
                    for i in range(n):
                        v = v_c[i]
                        p_c[i] += v * ab[i]
                        q_c[i] += v * a2b[i]
                        z_c[i] += v * wb[i]
            # Column sums -> block sums (stride-4 loads that vectorise).
            for k in range(12):
                row = acc[k]
                srow = s[k]
                for j in range(nb):
                    srow[j] = row[4 * j] + row[4 * j + 1] + row[4 * j + 2] + row[4 * j + 3]
            # Soft blocks' outputs: one loop per output array, each storing
            # whole 4-channel groups (a loop with many arrays, or one storing
            # a single channel at stride 4, does not vectorise).
            o0 = 4 * b0
            fa_s = fa_r[o0 : 4 * b1]
            ba_s = ba_r[o0 : 4 * b1]
            ex_s = ex_r[o0 : 4 * b1]
            cl_s = cl_r[o0 : 4 * b1]
            ib_s, ig_s, ir_s = bs_b[b0:b1], bs_g[b0:b1], bs_r[b0:b1]
            sa_s, n_s = bs_a[b0:b1], bs_n[b0:b1]
            s_pb, s_pg, s_pr = s[0], s[1], s[2]
            for j in range(nb):
                fa_s[4 * j] = s_pb[j] * inv
                fa_s[4 * j + 1] = s_pg[j] * inv
                fa_s[4 * j + 2] = s_pr[j] * inv
                fa_s[4 * j + 3] = sa_s[j] * inv
            for j in range(nb):
                ba_s[4 * j] = (ib_s[j] - s_pb[j]) * inv
                ba_s[4 * j + 1] = (ig_s[j] - s_pg[j]) * inv
                ba_s[4 * j + 2] = (ir_s[j] - s_pr[j]) * inv
                ba_s[4 * j + 3] = (n_s[j] - sa_s[j]) * inv
            s_qb, s_qg, s_qr, s_a3 = s[3], s[4], s[5], s[7]
            for j in range(nb):
                ex_s[4 * j] = s_qb[j] * inv
                ex_s[4 * j + 1] = s_qg[j] * inv
                ex_s[4 * j + 2] = s_qr[j] * inv
                ex_s[4 * j + 3] = s_a3[j] * inv
            s_zb, s_zg, s_zr, s_w = s[8], s[9], s[10], s[11]
            for j in range(nb):
                cl_s[4 * j] = s_zb[j] * inv
                cl_s[4 * j + 1] = s_zg[j] * inv
                cl_s[4 * j + 2] = s_zr[j] * inv
                cl_s[4 * j + 3] = s_w[j] * inv
            a2_s = a2_r[b0:b1]
            s_a2 = s[6]
            for j in range(nb):
                a2_s[j] = s_a2[j] * inv


# A pixel at offset k (0..3) inside its block lies between its block's cell
# and the neighbour cell _NB[k] away, at weight _NW[k] on the neighbour
# (cell centres sit at pixel 1.5 of each block).
_NB = np.array([-1, -1, 1, 1], np.int64)
_NW = np.array([0.375, 0.125, 0.125, 0.375], np.float32)


@njit(cache=True, nogil=True, inline="always")
def _sample_row(fb, by, ky, b0, b1, vrow, buf):
    """F_hat and B_hat, bilinear, for the pixels of blocks b0..b1-1 on pixel row 4 * by + ky.

    fb: float32 (6, gh, gw), planar. Writes buf[c, i] (c: F_hat BGR then
    B_hat BGR; i: pixel 4 * b0 + i) as planar rows, so the blend that reads
    them vectorises.
    """
    gh, gw = fb.shape[1], fb.shape[2]
    one = np.float32(1)
    gy = min(max(by + _NB[ky], 0), gh - 1)
    wy = _NW[ky]
    w0 = one - wy
    nb = b1 - b0
    left = max(b0 - 1, 0)
    right = min(b1, gw - 1)
    for c in range(6):
        ra = fb[c, by]
        rb = fb[c, gy]
        v = vrow[c]
        # Vertical lerp of cells b0 - 1 .. b1 (clamped at the grid's edges).
        v[0] = w0 * ra[left] + wy * rb[left]
        ra1 = ra[b0:b1]
        rb1 = rb[b0:b1]
        for d in range(nb):
            v[d + 1] = w0 * ra1[d] + wy * rb1[d]
        v[nb + 1] = w0 * ra[right] + wy * rb[right]
        o = buf[c]
        for j in range(nb):
            o[4 * j] = np.float32(0.375) * v[j] + np.float32(0.625) * v[j + 1]
            o[4 * j + 1] = np.float32(0.125) * v[j] + np.float32(0.875) * v[j + 1]
            o[4 * j + 2] = np.float32(0.875) * v[j + 1] + np.float32(0.125) * v[j + 2]
            o[4 * j + 3] = np.float32(0.625) * v[j + 1] + np.float32(0.375) * v[j + 2]


@njit(cache=True, nogil=True)
def composite_bgr(frame, alpha, cls, fb, out):
    """Blend the person into ``out``, which already holds the new background.

    frame, out: uint8 (H, 3W) (BGR rows flattened); alpha: float32 (H, W);
    cls: uint8 block classes from ``block_sums``; fb: float32 (6, gh, gw)
    [F_hat BGR, B_hat BGR], planar. Pixels with a = 0 are left alone, a = 1 get the
    frame's pixel, and in between out = a F + (1 - a) out with
    F = clip(Fh + a (I - a Fh - (1 - a) Bh), 0, 255), Fh and Bh sampled
    bilinearly from fb.

    Only spans of soft blocks (``_soft_spans``) do arithmetic, a row at a
    time through planar float buffers: the frame and output rows are
    deinterleaved and reinterleaved once, as whole stride-3 groups, and the
    blend runs as branch-free loops over contiguous arrays that LLVM
    vectorises (a frame that is soft everywhere costs ~2 ms at 720p rather
    than ~15 with a per-pixel branchy loop).
    """
    h, w = alpha.shape
    gh, gw = cls.shape
    lo = np.float32(0.5 / 255)
    hi = np.float32(1 - 0.5 / 255)
    one = np.float32(1)
    zero = np.float32(0)
    runs = np.empty((gw, 3), np.int64)
    spans = np.empty((gw, 2), np.int64)
    vrow = np.empty((6, gw + 2), np.float32)
    buf = np.empty((6, 4 * gw), np.float32)
    ac = np.empty(4 * gw, np.float32)  # alpha clipped to [0, 1]
    sel = np.empty(4 * gw, np.int8)  # 1: person, -1: background, 0: blend
    ib = np.empty((3, 4 * gw), np.float32)  # frame row, planar
    ob = np.empty((3, 4 * gw), np.float32)  # output row, planar
    ib0, ib1, ib2 = ib[0], ib[1], ib[2]
    ob0, ob1, ob2 = ob[0], ob[1], ob[2]
    for by in range(gh):
        y0 = by * 4
        y1 = min(y0 + 4, h)
        nr = _runs(cls[by], runs)
        ns = _soft_spans(cls[by], spans, SPAN_GAP)
        for r in range(nr):
            if runs[r, 2] == 1:  # person blocks: plain copy
                i0 = 12 * runs[r, 0]
                i1 = 3 * min(4 * runs[r, 1], w)
                for y in range(y0, y1):
                    # 0-based loop over 1D views: vectorised to memcpy speed
                    # (offset indexing into the 2D arrays is ~30x slower).
                    src = frame[y, i0:i1]
                    dst = out[y, i0:i1]
                    for i in range(src.size):
                        dst[i] = src[i]
        for y in range(y0, y1):
            for r in range(ns):
                b0 = spans[r, 0]
                b1 = spans[r, 1]
                _sample_row(fb, by, y - y0, b0, b1, vrow, buf)
                x0 = 4 * b0
                n = min(4 * b1, w) - x0
                ar = alpha[y, x0 : x0 + n]
                fr = frame[y, 3 * x0 : 3 * (x0 + n)]
                orow = out[y, 3 * x0 : 3 * (x0 + n)]
                for i in range(n):
                    a = ar[i]
                    ac[i] = min(max(a, zero), one)
                    sel[i] = 1 if a >= hi else (0 if a > lo else -1)  # NaN: background
                # Deinterleave once (full stride-3 groups vectorise; a single
                # channel's stride-3 loads and stores do not).
                for i in range(n):
                    ib0[i] = np.float32(fr[3 * i])
                    ib1[i] = np.float32(fr[3 * i + 1])
                    ib2[i] = np.float32(fr[3 * i + 2])
                for i in range(n):
                    ob0[i] = np.float32(orow[3 * i])
                    ob1[i] = np.float32(orow[3 * i + 1])
                    ob2[i] = np.float32(orow[3 * i + 2])
                for c in range(3):
                    fh = buf[c]
                    bh = buf[c + 3]
                    ic = ib[c]
                    oc = ob[c]
                    for i in range(n):
                        a = ac[i]
                        f = fh[i] + a * (ic[i] - a * fh[i] - (one - a) * bh[i])
                        f = min(max(f, zero), np.float32(255))
                        v = a * f + (one - a) * oc[i] + np.float32(0.5)
                        v = ic[i] if sel[i] > 0 else v
                        oc[i] = oc[i] if sel[i] < 0 else v
                for i in range(n):
                    orow[3 * i] = np.uint8(ob0[i])
                    orow[3 * i + 1] = np.uint8(ob1[i])
                    orow[3 * i + 2] = np.uint8(ob2[i])


@njit(cache=True, nogil=True)
def composite_bgra(frame, alpha, cls, fb, out):
    """Straight-alpha BGRA: colour F (the person's estimated colour), A = rint(a * 255).

    frame: uint8 (H, 3W); alpha: float32 (H, W); cls, fb as for
    ``composite_bgr``; out: uint32 (H, W), each pixel B | G << 8 | R << 16 |
    A << 24 (a little-endian view of BGRA bytes), every pixel written. Where
    a = 0 the colour is F_hat (per block): a smooth extension of the person,
    so a consumer that filters or scales the image bleeds no old background
    into the edge. A uses the same float32 arithmetic as
    np.rint(np.clip(alpha, 0, 1) * 255).
    """
    h, w = alpha.shape
    gh, gw = cls.shape
    hi = np.float32(1 - 0.5 / 255)
    one = np.float32(1)
    zero = np.float32(0)
    s255 = np.float32(255)
    runs = np.empty((gw, 3), np.int64)
    vrow = np.empty((6, gw + 2), np.float32)
    buf = np.empty((6, 4 * gw), np.float32)
    pix = np.empty(4 * gw, np.uint32)
    acl = np.empty(4 * gw, np.float32)
    empty = np.empty(gw, np.uint32)  # per block: its F_hat colour, A = 0
    for by in range(gh):
        y0 = by * 4
        y1 = min(y0 + 4, h)
        nr = _runs(cls[by], runs)
        for bx in range(gw):
            empty[bx] = (
                np.uint32(fb[0, by, bx] + np.float32(0.5))
                | np.uint32(fb[1, by, bx] + np.float32(0.5)) << 8
                | np.uint32(fb[2, by, bx] + np.float32(0.5)) << 16
            )
        for y in range(y0, y1):
            for r in range(nr):
                b0 = runs[r, 0]
                b1 = runs[r, 1]
                k = runs[r, 2]
                x0 = 4 * b0
                n = min(4 * b1, w) - x0
                ar = alpha[y, x0 : x0 + n]
                fr = frame[y, 3 * x0 : 3 * (x0 + n)]
                orow = out[y, x0 : x0 + n]
                if k == 0:
                    for i in range(n):
                        a = min(ar[i], one) if ar[i] > zero else zero  # NaN: 0
                        orow[i] = empty[b0 + (i >> 2)] | np.uint32(np.rint(a * s255)) << 24
                elif k == 1:
                    for i in range(n):
                        a8 = np.uint32(np.rint(min(ar[i], one) * s255))
                        bgr = np.uint32(fr[3 * i]) | np.uint32(fr[3 * i + 1]) << 8
                        orow[i] = bgr | np.uint32(fr[3 * i + 2]) << 16 | a8 << 24
                else:
                    _sample_row(fb, by, y - y0, b0, b1, vrow, buf)
                    for i in range(n):
                        acl[i] = min(ar[i], one) if ar[i] > zero else zero  # NaN: 0
                        pix[i] = np.uint32(np.rint(acl[i] * s255)) << 24
                    for c in range(3):
                        fh = buf[c]
                        bh = buf[c + 3]
                        for i in range(n):
                            a = acl[i]
                            ii = np.float32(fr[3 * i + c])
                            f = fh[i] + a * (ii - a * fh[i] - (one - a) * bh[i])
                            f = min(max(f, zero), s255)
                            f = ii if ar[i] >= hi else f
                            pix[i] |= np.uint32(f + np.float32(0.5)) << (8 * c)
                    for i in range(n):
                        orow[i] = pix[i]


_warmed = False


def warm_up() -> None:
    """Load (or compile, once per machine) the numba kernels now, not on the first frame."""
    global _warmed
    if _warmed:
        return
    frame = np.zeros((8, 24), np.uint8)
    alpha = np.full((8, 8), 0.5, np.float32)
    g4 = np.zeros((2, 2, 4), np.float32)
    g3 = np.zeros((2, 2, 3), np.float32)
    g1 = np.zeros((2, 2), np.float32)
    fb = np.zeros((6, 2, 2), np.float32)
    cls = np.zeros((2, 2), np.uint8)
    eps = np.float32(1)
    block_sums(frame, alpha, g4, g4.copy(), g1, g4.copy(), g4.copy(), cls)
    ratio(g4, g3, eps, g3.copy())
    fit_fb(g4, g4, g1, g3, g3, 0.01, g3.copy(), g3.copy())
    narrow_pass(g4, g1, g4, g3, g3, eps, np.zeros((2, 8), np.float32), fb)
    composite_bgr(frame, alpha, cls, fb, np.zeros((8, 24), np.uint8))
    composite_bgra(frame, alpha, cls, fb, np.zeros((8, 8), BGRA_U32))
    _warmed = True
