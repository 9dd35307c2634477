"""On demand: follow who has the virtual camera open; no audience, no camera.

:class:`OnDemand` watches the device node of the first virtual-camera sink
(inotify plus a /proc scan, :class:`livebg.system.devices.OpenWatcher`). After
``IDLE_GRACE`` seconds with no application holding it open, the engine pauses
and releases the camera; the first application to open it resumes it.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)

IDLE_GRACE = 2.0  # seconds without a consumer before pausing on demand


def virtual_devices(sinks: list) -> list[str]:
    """Device nodes of sinks whose consumers matter (virtual cameras: ``on_demand_device``)."""
    return [str(s.on_demand_device) for s in sinks if s.on_demand_device]


class OnDemand:
    """Whether to pause for want of an audience; ``idle`` is the answer.

    Args:
        watcher: an OpenWatcher of the virtual camera's device node.
        enabled: ``daemon.on_demand`` at start (later values come to :meth:`check`).
        device: the device node, for the log.
    """

    def __init__(self, watcher, enabled: bool, device: str = ""):
        self.watcher = watcher
        self.idle = False
        self._idle_since: float | None = time.monotonic()
        if enabled and not watcher.consumers:
            self.idle = True  # nobody watches yet: do not even open the camera
            log.info("waiting for an application to open %s", device or "the virtual camera")

    @classmethod
    def start(cls, sinks: list, enabled: bool) -> OnDemand | None:
        """Watch the first virtual camera among ``sinks``; None when there is none."""
        from livebg.system.devices import OpenWatcher

        devices = virtual_devices(sinks)
        if not devices:
            return None
        try:
            watcher = OpenWatcher(devices[0])
        except OSError as e:
            log.warning("cannot follow who opens %s (%s): on-demand pausing is off",
                        devices[0], e)
            return None
        return cls(watcher, enabled, devices[0])

    @property
    def consumers(self) -> list:
        return self.watcher.consumers

    def check(self, enabled: bool) -> bool | None:
        """Update ``idle``: True when it just began, False when it just ended, else None."""
        consumers = self.watcher.consumers
        now = time.monotonic()
        if consumers or not enabled:
            self._idle_since = None
            if self.idle:
                self.idle = False
                log.info("virtual camera opened by %s: resuming",
                         ", ".join(str(c) for c in consumers) or "someone")
                return False
            return None
        if self._idle_since is None:
            self._idle_since = now
        if not self.idle and now - self._idle_since >= IDLE_GRACE:
            self.idle = True
            log.info("no application has the virtual camera open: pausing")
            return True
        return None

    def close(self) -> None:
        self.watcher.close()
