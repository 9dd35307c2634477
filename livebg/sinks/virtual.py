"""The virtual camera: pyvirtualcam (v4l2loopback on Linux, OBS's camera elsewhere)."""

from __future__ import annotations

import logging
import sys

import numpy as np

from livebg.sinks.base import SinkBase, SinkError, check_frame, to_bgr

log = logging.getLogger(__name__)

MODPROBE = ("sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=livebg")


class VirtualCameraSink(SinkBase):
    """A virtual camera through pyvirtualcam (v4l2loopback on Linux).

    Args:
        device: e.g. ``/dev/video10``; empty or None for the first loopback device.
    Raises:
        SinkError: no loopback device / driver, with the command that fixes it.
    """

    def __init__(self, width: int, height: int, fps: float, *, device: str | None = None):
        super().__init__(width, height)
        import pyvirtualcam

        kwargs = {"fmt": pyvirtualcam.PixelFormat.BGR}
        if device:
            kwargs["device"] = device
        if sys.platform.startswith("linux"):
            kwargs["backend"] = "v4l2loopback"
        try:
            self._cam = pyvirtualcam.Camera(width, height, fps, **kwargs)
        except (RuntimeError, ValueError) as e:
            reason = " ".join(str(e).split())
            if sys.platform.startswith("linux"):
                raise SinkError(f"no usable v4l2loopback device ({reason}); run: {MODPROBE}"
                                " (install the v4l2loopback-dkms package first if needed)") from None
            raise SinkError(f"no virtual camera ({reason}); install OBS Studio and start its "
                            "virtual camera once") from None
        self.device = self._cam.device
        self.on_demand_device = str(self.device)
        log.info("virtual camera: %s %dx%d@%g", self.device, width, height, fps)

    def write(self, image: np.ndarray) -> None:
        check_frame(image, self.size)
        self._cam.send(np.ascontiguousarray(to_bgr(image)))

    def close(self) -> None:
        self._cam.close()

    def describe(self) -> str:
        return f"virtual camera {self.device}"
