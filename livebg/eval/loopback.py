"""A virtual camera without a device, for ``livebg bench``: the real sink, an emulated backend.

:class:`EmulatedVirtualCameraSink` is :class:`~livebg.sinks.virtual.VirtualCameraSink`
(its ``write`` unchanged) over a real :class:`pyvirtualcam.Camera` (its
``send`` unchanged: dtype and shape checks, the frame counter, the flatten),
whose backend is :class:`LoopbackEmulator` instead of pyvirtualcam's native
``v4l2loopback`` one. For the BGR frames livebg sends, that native backend
(pyvirtualcam 0.15, ``native_linux_v4l2loopback/virtual_output.h``)
negotiates ``V4L2_PIX_FMT_YUV420`` (I420) with the device, converts every
frame with libyuv's ``RGB24ToI420`` (BT.601, limited range, 2x2 chroma
averaging) into a buffer it keeps, and ``write``s the w * h * 3 / 2 bytes to
the device. The emulator does the same work: OpenCV's ``COLOR_BGR2YUV_I420``
(the same BT.601 limited-range formula, SIMD like libyuv) into a kept buffer,
then a copy of those bytes into a device-sized buffer standing for the
``write`` (which copies them into the loopback's queue).
"""

from __future__ import annotations

import cv2
import numpy as np

from livebg.sinks.virtual import VirtualCameraSink

BACKEND = "livebg-bench-loopback"
DEVICE = "/dev/video-emulated"
I420 = "I420"


class LoopbackEmulator:
    """A pyvirtualcam backend doing what the v4l2loopback one does, minus the device.

    Accepts BGR (pyvirtualcam's ``24BG``) only, as livebg sends; ``frames``
    counts the frames converted and ``device_buffer`` holds the last one as
    the device would (I420, uint8 (h * 3 / 2, w)).
    """

    def __init__(self, *, width: int, height: int, fps: float, fourcc: int,
                 device: str | None, **kw):
        from pyvirtualcam.util import encode_fourcc

        if fourcc != encode_fourcc("24BG"):
            raise ValueError("the emulated loopback takes BGR frames only")
        if width % 2 or height % 2:
            raise ValueError("I420 needs an even width and height")
        self.width, self.height = width, height
        self._i420 = np.empty((height * 3 // 2, width), np.uint8)   # the backend's buffer
        self.device_buffer = np.empty_like(self._i420)              # stands for the device
        self.frames = 0
        self._device = device or DEVICE

    def send(self, frame: np.ndarray) -> None:
        bgr = frame.reshape(self.height, self.width, 3)
        cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420, dst=self._i420)
        np.copyto(self.device_buffer, self._i420)  # write(fd, ...): one copy of the bytes
        self.frames += 1

    def device(self) -> str:
        return self._device

    def native_fourcc(self) -> int:
        from pyvirtualcam.util import encode_fourcc

        return encode_fourcc(I420)

    def close(self) -> None:
        pass


def register() -> None:
    """Make the emulator known to pyvirtualcam as backend ``livebg-bench-loopback``."""
    import pyvirtualcam

    pyvirtualcam.register_backend(BACKEND, LoopbackEmulator)


class EmulatedVirtualCameraSink(VirtualCameraSink):
    """The virtual-camera sink over :class:`LoopbackEmulator`: every cost but the device's."""

    # No device node to watch for consumers: on demand, the bench is an
    # audience that always watches (an empty name turns the watching off).
    on_demand_device = ""

    def __init__(self, width: int, height: int, fps: float):
        import pyvirtualcam

        register()
        super(VirtualCameraSink, self).__init__(width, height)  # the base sink, not the device
        self._cam = pyvirtualcam.Camera(width, height, fps, fmt=pyvirtualcam.PixelFormat.BGR,
                                        backend=BACKEND)
        self.device = self._cam.device

    @property
    def backend(self) -> LoopbackEmulator:
        return self._cam._backend

    def describe(self) -> str:
        return "virtual camera, emulated v4l2loopback (BGR -> I420)"
