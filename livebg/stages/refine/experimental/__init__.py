"""Research-only refiner options, kept off the runtime path.

Only ``scripts/ablation_refine.py`` (and the refiner tests) reach these; the
daemon never does. They measured no gain on the dev photos (see
:mod:`livebg.stages.refine.sss`):

* ``eigen`` = k: the k smallest eigenvectors of the normalised Laplacian are
  tracked across frames (:mod:`.eigen`) and their fit to the probability is
  the solve's cold start; ``eigen_only``: the fit is the matte, no CG solve.
* ``soft_tau`` > 0 (SLIC only): each pixel takes a soft mix of the 9 nearby
  superpixels' mattes by colour/position distance (width in squared Lab
  units of the SLIC distance) instead of its own superpixel's value.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from livebg.stages.refine import make_refiner as make_runtime_refiner
from livebg.stages.refine import options_for
from livebg.stages.refine import superpixels as spx
from livebg.stages.refine.experimental import eigen as eg
from livebg.stages.refine.sss import SSSOptions, SSSRefiner


@dataclass(frozen=True)
class ExperimentalOptions:
    """The research options (module docstring); the defaults leave the refiner as it runs."""

    eigen: int = 0
    eigen_only: bool = False
    soft_tau: float = 0.0

    def __post_init__(self):
        if self.eigen_only and self.eigen <= 0:
            raise ValueError("eigen_only needs eigen > 0")


class ExperimentalSSSRefiner(SSSRefiner):
    """:class:`SSSRefiner` with the research options of :class:`ExperimentalOptions`."""

    def __init__(self, options: SSSOptions | None = None,
                 experimental: ExperimentalOptions | None = None):
        super().__init__(options)
        self.exp = experimental or ExperimentalOptions()

    def _solve_nodes(self, solve, graph, p, conf, t):
        x0, iters = self._start(p.shape, p)
        fit = None
        if self.exp.eigen > 0:
            t0 = time.perf_counter()
            fit = self._eigen_fit(graph(), p.ravel(), conf.ravel()).reshape(p.shape)
            prev = self.state.alpha_nodes
            if prev is None or prev.shape != p.shape:
                x0 = fit
            t["eigen"] = (time.perf_counter() - t0) * 1e3
        if self.exp.eigen_only:
            return fit, float("nan")
        return solve(x0, iters)

    def _to_pixels(self, a, labels, lab, cen, gy, gx, m2):
        if self.exp.soft_tau <= 0:
            return super()._to_pixels(a, labels, lab, cen, gy, gx, m2)
        h, w = labels.shape
        return spx.soft_assign(lab, cen, gy, gx, m2, np.float32(self.exp.soft_tau), a,
                               self._ws.get("soft", (h, w)))

    def _eigen_fit(self, csr, p, conf):
        """Track the eigenvectors on this graph; their fit to p (float32, n)."""
        st = self.state
        n = p.shape[0]
        k = min(self.exp.eigen, n - 2)
        if k < 1:
            return p
        v = st.eigvecs
        if v is None or v.shape != (n, k):
            v, _ = eg.fresh_eigenvectors(*csr, k)
        else:
            v, _ = eg.track_eigenvectors(*csr, v)
        st.eigvecs = v
        return eg.fit_to_probability(v, eg.degree_scale(csr[0], csr[2]), p, conf)


_EXPERIMENTAL = {f.name for f in dataclasses.fields(ExperimentalOptions)}


def make_refiner(mode: str, **options):
    """A refiner by name from flat keyword options, the research ones included.

    The ablation script's way in: ``sss`` options are split into
    :class:`SSSOptions` and :class:`ExperimentalOptions`; other modes go to
    :func:`livebg.stages.refine.make_refiner` with their options dataclass.
    """
    if mode != "sss":
        return make_runtime_refiner(mode, options_for(mode, **options) if options else None)
    exp = {k: v for k, v in options.items() if k in _EXPERIMENTAL}
    rest = {k: v for k, v in options.items() if k not in _EXPERIMENTAL}
    return ExperimentalSSSRefiner(SSSOptions(**rest), ExperimentalOptions(**exp))
