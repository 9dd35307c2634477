"""``livebg bench``'s honest paced run: MJPEG decode and the virtual camera's conversion included.

Nothing here times anything: the tests check what the bench runs and reports.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from livebg.config import Config
from livebg.eval import bench
from livebg.eval.loopback import EmulatedVirtualCameraSink
from livebg.stages.sources import CameraSource, JpegStreamSource, SampleSource, decode_mjpeg


def test_emulated_loopback_converts_to_the_i420_the_device_gets():
    sink = EmulatedVirtualCameraSink(64, 32, 30)
    image = np.random.default_rng(0).integers(0, 256, (32, 64, 3), np.uint8)
    sink.write(image)
    sink.write(image)
    assert sink.backend.frames == 2
    assert sink._cam.native_fmt.name == "I420"
    assert np.array_equal(sink.backend.device_buffer, cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420))
    # The real sink's and pyvirtualcam's own checks run: a wrong size is refused.
    with pytest.raises(ValueError):
        sink.write(np.zeros((30, 64, 3), np.uint8))


def test_emulated_sink_is_not_watched_on_demand():
    from livebg.engine.ondemand import virtual_devices

    assert virtual_devices([EmulatedVirtualCameraSink(64, 32, 30)]) == []


def test_jpeg_stream_decodes_each_frame_like_the_camera():
    sample = SampleSource(width=160, height=90, count=3)
    images = [sample.render(i) for i in range(3)]
    stream = JpegStreamSource.encode(images, quality=90)
    assert (stream.width, stream.height) == (160, 90)
    got = [stream.read().image for _ in range(4)]
    assert np.array_equal(got[3], got[0])  # it loops
    for img, jpg in zip(got, stream.frames):
        assert np.array_equal(img, cv2.imdecode(jpg, cv2.IMREAD_COLOR))
    assert float(np.abs(got[1].astype(np.int16) - images[1]).mean()) < 6.0  # the same picture


class _RawMjpegCapture:
    """Stands in for a V4L2 MJPEG camera (none can exist here): with CONVERT_RGB off
    OpenCV hands back each frame's JPEG bytes as one row of uint8."""

    def __init__(self, frames):
        self.frames, self.props = list(frames), {}

    def read(self):
        return (True, self.frames.pop(0)) if self.frames else (False, None)

    def set(self, prop, value):
        self.props[prop] = value
        return True


def _camera(frames) -> CameraSource:
    cam = object.__new__(CameraSource)  # no device: only the read path is under test
    cam._cap, cam._index, cam.device, cam.raw_mjpeg = _RawMjpegCapture(frames), 0, "0", True
    return cam


def test_camera_decodes_raw_mjpeg_with_the_bench_s_function():
    image = SampleSource(width=160, height=90, count=1).render(0)
    jpg = cv2.imencode(".jpg", image)[1].reshape(1, -1)
    frame = _camera([jpg]).read()
    assert np.array_equal(frame.image, decode_mjpeg(jpg))
    assert frame.image.shape == (90, 160, 3)


def test_camera_falls_back_when_raw_frames_are_not_jpeg():
    cam = _camera([np.full((1, 500), 7, np.uint8)])
    assert cam.read() is None
    assert cam.raw_mjpeg is False
    assert cam._cap.props[cv2.CAP_PROP_CONVERT_RGB] == 1


@pytest.mark.slow
def test_paced_run_includes_decode_and_conversion_and_reports_cpu():
    """A short paced run of the real engine at a small size (the real net)."""
    stream = bench.jpeg_stream(320, 180, 10)
    r = bench.measure_paced(Config(), stream, 3.0, min_frames=5)
    assert r["includes"] == ["mjpeg-decode", "virtual-camera-conversion"]
    assert r["frames"] > 0, r.get("error")
    for name in ("capture", "segment", "matte", "output"):
        assert r["threads_cpu_ms"][name] > 0
    assert {"segment", "composite", "output"} <= set(r["stages_cpu_ms"])
    assert r["cpu_ms_per_frame"] > 0


def test_serial_cpu_counts_every_step():
    stream = bench.jpeg_stream(320, 180, 10)
    r = bench.measure_cpu(Config(), stream, 12)
    for k in ("mjpeg-decode", "segment", "matte", "composite", "virtual-camera"):
        assert r[k] > 0, k
    assert r["total"] == pytest.approx(sum(r[k] for k in ("mjpeg-decode", "segment", "matte",
                                                            "composite", "virtual-camera")))
    assert 0.0 <= r["still_fraction"] <= 1.0
