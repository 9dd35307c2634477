"""Who holds a device, and when applications open or close the virtual camera.

Linux only (elsewhere every function answers "unknown": empty lists, no events).

``holders(path)`` scans ``/proc/*/fd`` for links to a device node: it names
the process that keeps a camera busy, and counts the applications that have
the virtual camera open. A scan reads every descriptor of every process the
user owns, a few milliseconds on a desktop, so :class:`OpenWatcher` does not
poll it: it waits on inotify ``IN_OPEN``/``IN_CLOSE`` events of the device
node (free while nothing happens) and scans only after one, plus a slow
safety rescan in case an event was missed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import select
import struct
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

IN_OPEN = 0x00000020
IN_CLOSE_WRITE = 0x00000008
IN_CLOSE_NOWRITE = 0x00000010
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)


@dataclass(frozen=True)
class Holder:
    pid: int
    name: str

    def __str__(self) -> str:
        return f"{self.name} (pid {self.pid})"


def device_path(device: str | int) -> str:
    """``"0"``/``0`` -> ``/dev/video0``; a path is returned with symlinks resolved."""
    text = str(device)
    if text.isdigit():
        text = f"/dev/video{text}"
    return os.path.realpath(text)


def _comm(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as f:
            return f.read().strip() or "?"
    except OSError:
        return "?"


def holders(path: str | os.PathLike, *, exclude: set[int] | None = None) -> list[Holder]:
    """Processes with an open descriptor on ``path`` (ours included unless excluded).

    Processes of other users cannot be inspected without privileges and are
    silently skipped, so an empty list means "none that we can see".
    """
    target = os.path.realpath(path)
    exclude = exclude or set()
    found: list[Holder] = []
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return found
    for pid in pids:
        if int(pid) in exclude:
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:  # gone, or another user's process
            continue
        for fd in fds:
            try:
                link = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if link == target:
                found.append(Holder(int(pid), _comm(pid)))
                break
    return found


def describe_holders(found: list[Holder]) -> str:
    return ", ".join(str(h) for h in found)


class _Inotify:
    """Minimal inotify through libc (no third-party package)."""

    def __init__(self, path: str, mask: int):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        self.fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        wd = libc.inotify_add_watch(self.fd, os.fsencode(path), mask)
        if wd < 0:
            err = ctypes.get_errno()
            os.close(self.fd)
            raise OSError(err, f"inotify_add_watch {path} failed")

    def wait(self, timeout: float) -> int:
        """Number of events that arrived within ``timeout`` seconds (drained)."""
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return 0
        n = 0
        while True:
            try:
                data = os.read(self.fd, 4096)
            except BlockingIOError:
                return n
            off = 0
            while off + _EVENT.size <= len(data):
                _, _, _, length = _EVENT.unpack_from(data, off)
                off += _EVENT.size + length
                n += 1

    def close(self) -> None:
        os.close(self.fd)


class OpenWatcher:
    """Tracks which other processes have a device node open.

    A thread waits for inotify open/close events on ``path`` and rescans
    ``/proc`` shortly after each (the opener's descriptor appears a moment
    after the event), and every ``rescan`` seconds regardless. Without
    inotify it falls back to scanning every ``poll`` seconds.

    ``consumers`` is the latest list; ``changed`` is set whenever it changes.

    Args:
        path: the device node (or any file: tests use a FIFO).
        exclude: pids not to count (default: this process).
    """

    def __init__(self, path: str | os.PathLike, *, exclude: set[int] | None = None,
                 rescan: float = 5.0, poll: float = 0.5):
        self.path = os.path.realpath(path)
        self.exclude = exclude if exclude is not None else {os.getpid()}
        self.rescan = rescan
        self.poll = poll
        self.changed = threading.Event()
        self._consumers: list[Holder] = holders(self.path, exclude=self.exclude)
        self._stop = threading.Event()
        self._inotify: _Inotify | None = None
        if sys.platform.startswith("linux"):
            try:
                self._inotify = _Inotify(self.path, IN_OPEN | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE)
            except (OSError, AttributeError) as e:
                log.debug("inotify unavailable on %s (%s): polling every %.1f s", self.path, e,
                          poll)
        self._thread = threading.Thread(target=self._run, name="livebg-watch", daemon=True)
        self._thread.start()

    @property
    def consumers(self) -> list[Holder]:
        return list(self._consumers)

    def _scan(self) -> None:
        found = holders(self.path, exclude=self.exclude)
        if found != self._consumers:
            self._consumers = found
            log.debug("%s open by: %s", self.path, describe_holders(found) or "nobody")
            self.changed.set()

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            if self._inotify is None:
                self._stop.wait(self.poll)
                self._scan()
                continue
            if self._inotify.wait(min(self.rescan, 0.5)):
                # Scan now and again a little later: the opener installs its
                # descriptor just after the event; a close may come in a burst.
                self._stop.wait(0.03)
                self._inotify.wait(0)
                self._scan()
                self._stop.wait(0.15)
                self._inotify.wait(0)
                self._scan()
                last = time.monotonic()
            elif time.monotonic() - last >= self.rescan:
                self._scan()
                last = time.monotonic()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


SYS = Path("/sys")


def module_loaded(sys_root: Path = SYS) -> bool:
    return (Path(sys_root) / "module" / "v4l2loopback").is_dir()


def module_parameters(sys_root: Path = SYS) -> dict[str, str]:
    """v4l2loopback's parameters from sysfs (empty when the module is not loaded)."""
    d = Path(sys_root) / "module" / "v4l2loopback" / "parameters"
    out: dict[str, str] = {}
    if d.is_dir():
        for p in sorted(d.iterdir()):
            try:
                out[p.name] = p.read_text(errors="replace").strip()
            except OSError:
                continue
    return out


def video_devices(sys_root: Path = SYS) -> list[tuple[str, str, bool]]:
    """(device path, card name, is a v4l2loopback device) for every /dev/video*.

    A loopback device has no parent bus device in sysfs (``device`` link);
    a real camera has one (USB, PCI, platform).
    """
    base = Path(sys_root) / "class" / "video4linux"
    out = []
    if not base.is_dir():
        return out
    loaded = module_loaded(sys_root)
    labels = {x.strip() for x in module_parameters(sys_root).get("card_label", "").split(",")
              if x.strip()}
    for d in sorted(base.iterdir(), key=lambda p: (len(p.name), p.name)):
        if not d.name.startswith("video"):
            continue
        try:
            name = (d / "name").read_text(errors="replace").strip()
        except OSError:
            name = "?"
        driver = os.path.basename(os.path.realpath(d / "device" / "driver")) \
            if (d / "device" / "driver").exists() else ""
        loop = loaded and ("v4l2loopback" in driver or not (d / "device").exists()
                           or name in labels or name.startswith("Dummy video device"))
        out.append((f"/dev/{d.name}", name, loop))
    return out


def loopback_devices(sys_root: Path = SYS) -> list[str]:
    return [dev for dev, _, loop in video_devices(sys_root) if loop]
