"""The still gate: skip the net and the refinement while nothing moves, never on motion."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from livebg.config import Config
from livebg.factory import make_processor
from livebg.processor import STILL
from livebg.stages.sources import SampleSource
from livebg.stages.still import StillGate

W, H = 640, 360


@pytest.fixture(scope="module")
def sample():
    return SampleSource(width=W, height=H, count=None)


def _noisy(image: np.ndarray, seed: int, sigma: float = 2.0, jpeg: int = 80) -> np.ndarray:
    """``image`` as a webcam would give it again: fresh sensor noise, then MJPEG."""
    rng = np.random.default_rng(seed)
    noisy = np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)
    return cv2.imdecode(cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, jpeg])[1],
                        cv2.IMREAD_COLOR)


class _Counting:
    """The real segmenter, counting its runs."""

    def __init__(self, segmenter):
        self.inner, self.runs = segmenter, 0
        self.input_size = segmenter.input_size

    def segment(self, image):
        self.runs += 1
        return self.inner.segment(image)


def test_gate_skips_still_noisy_frames_and_refreshes(sample):
    gate = StillGate((256, 144), refresh=4)
    base = sample.render(0)
    decisions = [gate.check(_noisy(base, i)) for i in range(12)]
    # First frame runs; then 3 skipped per full run (refresh 4).
    assert decisions == [False, True, True, True] * 3
    assert (gate.full, gate.skipped) == (3, 9)


def test_gate_runs_at_once_on_motion_and_after_reset(sample):
    gate = StillGate((256, 144), refresh=100)
    base = sample.render(0)
    assert not gate.check(_noisy(base, 0))
    assert gate.check(_noisy(base, 1))
    # The person a fraction of a second later: a full run on that very frame.
    assert not gate.check(_noisy(sample.render(3), 2))
    assert gate.check(_noisy(sample.render(3), 3))
    gate.reset()
    assert not gate.check(_noisy(sample.render(3), 4))


def test_gate_catches_a_slow_drift_against_the_last_full_run(sample):
    """Each step is below noise against the previous frame, but it adds up."""
    gate = StillGate((256, 144), refresh=1000)
    base = sample.render(0).astype(np.float32)
    decisions = [gate.check(np.clip(base + 0.75 * i, 0, 255).astype(np.uint8))
                 for i in range(40)]
    assert decisions[0] is False
    assert not all(decisions[1:]), "a brightening of 30 grey levels never ran the net"


def test_gate_arguments():
    with pytest.raises(ValueError):
        StillGate((256, 144), refresh=0)
    with pytest.raises(ValueError):
        StillGate((256, 144), image_lo=5, image_hi=5)


def test_processor_reuses_alpha_on_still_frames_and_reruns_the_net_on_motion(sample):
    """Real net and refiner: still frames get the last full run's alpha, motion a new one."""
    proc = make_processor(Config(), W, H)
    assert proc.still is not None
    proc.segmenter = seg = _Counting(proc.segmenter)
    base = sample.render(0)
    alphas = [proc.alpha(_noisy(base, i)) for i in range(4)]
    assert seg.runs == 1
    assert all(a is alphas[0] for a in alphas[1:])
    moved = _noisy(sample.render(6), 10)
    a = proc.alpha(moved)
    assert seg.runs == 2, "the net did not run on the frame the person moved in"
    assert a is not alphas[0]
    reference = make_processor(Config(), W, H)
    reference.still = None
    for i in range(4):
        reference.alpha(_noisy(base, i))
    expected = reference.alpha(moved)
    assert float(np.abs(a - expected).mean()) < 0.01


def test_skipped_frames_alpha_matches_running_every_frame(sample):
    """On a still stretch the reused alpha stays within a small tolerance of per-frame runs."""
    gated = make_processor(Config(), W, H)
    every = make_processor(Config(), W, H)
    every.still = None
    base = sample.render(0)
    diffs = []
    for i in range(10):
        frame = _noisy(base, 100 + i)
        diffs.append(float(np.abs(gated.alpha(frame) - every.alpha(frame)).mean()))
    assert gated.still.skipped >= 6
    assert max(diffs) < 0.005, diffs


def test_reset_then_still_item_runs_the_net_in_matte(sample):
    """A STILL item arriving after a reset (no alpha to reuse) still gets a real matte."""
    proc = make_processor(Config(), W, H)
    image = _noisy(sample.render(0), 0)
    proc.alpha(image)
    proc.reset()
    alpha = proc.matte(image, STILL)
    assert alpha.shape == (H, W) and alpha.dtype == np.float32
    assert 0.05 < float(alpha.mean()) < 0.95


def test_compositor_still_reuse_gives_the_same_output(sample):
    proc = make_processor(Config(), W, H)
    image = _noisy(sample.render(0), 0)
    alpha = proc.alpha(image)
    comp = proc.compositor
    first = comp.compose(image, alpha)
    again = _noisy(sample.render(0), 1)
    reused = comp.compose(again, alpha, still=True)
    fresh = comp.compose(again, alpha.copy())
    # The blend uses this frame's pixels; only the smooth estimates are reused.
    assert np.array_equal(reused[alpha >= 1 - 0.5 / 255], again[alpha >= 1 - 0.5 / 255])
    assert float(np.abs(reused.astype(np.int16) - fresh).mean()) < 0.5
    assert not np.array_equal(first, reused)


def test_compositor_ignores_still_for_another_alpha(sample):
    proc = make_processor(Config(), W, H)
    image = _noisy(sample.render(0), 0)
    alpha = proc.alpha(image)
    comp = proc.compositor
    comp.compose(image, alpha)
    other = np.zeros_like(alpha)
    out = comp.compose(image, other, still=True)  # not the array the estimates were made for
    assert np.array_equal(out, comp.compose(image, other))


def test_daemon_threads_carry_still_frames_to_the_sinks(sample):
    """The real engine (batch): still frames skip the net, every frame still reaches the sink."""
    from livebg.engine.daemon import Daemon
    from livebg.sinks.null import NullSink
    from livebg.stages.sources import JpegStreamSource

    base = sample.render(0)
    frames = [_noisy(base, i) for i in range(16)] + [_noisy(sample.render(8), 99)]
    written = []

    class Keep(NullSink):
        def write(self, image):
            written.append(image.copy())

    d = Daemon(Config(), realtime=False, control=False, watch_config=False,
               source_factory=lambda _c, _l: _Once(JpegStreamSource.encode(frames)),
               sink_factory=lambda _c, w, h, _f: [Keep(w, h)])
    assert d.run() == 0
    assert len(written) == len(frames)
    assert d.processor.still.skipped >= 8
    assert d.processor.still.full >= 4
    # The last frame moved: its output is not the still stretch's.
    assert float(np.abs(written[-1].astype(np.int16) - written[-2]).mean()) > 1.0


class _Once:
    """A JPEG stream played once (the stream itself loops)."""

    def __init__(self, stream):
        self.stream, self.left = stream, len(stream.frames)
        self.width, self.height, self.fps = stream.width, stream.height, stream.fps

    def read(self):
        if self.left == 0:
            return None
        self.left -= 1
        return self.stream.read()

    def describe(self):
        return "jpeg once"

    def close(self):
        pass
