"""The tray's only way to the daemon: its control socket (see livebg.system.control).

Every request opens a fresh connection, so a daemon that restarted is found
again by the next request with nothing to reset; between the two the tray
shows "not running". Protocol details (command names, reply fields, the
snapshot's base64 PNG) live here and nowhere else in the tray. No Qt here.
"""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livebg import config as config_mod

log = logging.getLogger(__name__)

# What the icon and menu show, from the daemon's status (or its absence).
RUNNING, PAUSED, NO_CAMERA, ERROR, STOPPED = "running", "paused", "no camera", "error", \
    "not running"
STATES = (RUNNING, PAUSED, NO_CAMERA, ERROR, STOPPED)


class LinkError(RuntimeError):
    """The daemon is not reachable, or refused the request (its message, one line)."""


class NotRunning(LinkError):
    """No daemon listens on the control socket."""


@dataclass
class Status:
    """The daemon's state as the tray shows it."""

    state: str                       # one of STATES
    text: str                        # one line for a tooltip or a status bar
    paused: bool = False
    raw: dict = field(default_factory=dict)


def classify(reply: dict | None, error: str = "") -> Status:
    """A :class:`Status` from a ``status`` reply (None: no daemon / error)."""
    if reply is None:
        if error:
            return Status(ERROR, error)
        return Status(STOPPED, "livebg is not running")
    state = reply.get("state") or "running"
    camera = reply.get("camera") or {}
    fps = reply.get("fps") or 0.0
    if reply.get("paused_by") == "user" or state == "paused":
        return Status(PAUSED, "paused: camera released", True, reply)
    if state == "unavailable" or (camera.get("problem") and state != "running"):
        return Status(NO_CAMERA, f"no camera: {camera.get('problem') or 'unavailable'}",
                      False, reply)
    if state == "idle":
        return Status(RUNNING, "ready: no application is using the virtual camera", False,
                      reply)
    if state == "ended":
        return Status(STOPPED, "finished: the input ended", False, reply)
    if state == "starting":
        return Status(RUNNING, "starting", False, reply)
    bg = reply.get("background") or ""
    return Status(RUNNING, f"running: {bg} background, {fps:.0f} fps", False, reply)


class DaemonLink:
    """Requests to the running daemon.

    Args:
        path: the control socket; None: ``daemon.socket`` from the user's
            configuration, else ``$XDG_RUNTIME_DIR/livebg/control.sock``
            (looked up again on every request, so a changed setting applies).
        timeout: seconds to wait for a reply.
    """

    def __init__(self, path: Path | None = None, *, timeout: float = 3.0):
        self._path = Path(path) if path else None
        self.timeout = timeout
        self._child: subprocess.Popen | None = None

    @property
    def path(self) -> Path:
        if self._path is not None:
            return self._path
        from livebg.system.control import socket_path

        setting = ""
        try:
            setting = config_mod.load().daemon.socket
        except config_mod.ConfigError:
            pass
        return socket_path(setting) or socket_path("")

    def request(self, cmd: str, **fields: Any) -> dict:
        """The daemon's reply to ``{"cmd": cmd, **fields}``.

        Raises:
            NotRunning: nothing listens on the socket.
            LinkError: no usable reply, or ``{"ok": false}`` (its error text).
        """
        from livebg.system.control import Client, ControlError

        path = self.path
        if not path.exists():
            raise NotRunning(f"livebg is not running (no control socket at {path})")
        try:
            with Client(path, timeout=self.timeout) as c:
                reply = c.request({"cmd": cmd, **fields})
        except ControlError as e:
            if "not running" in str(e):
                raise NotRunning(str(e)) from None
            raise LinkError(str(e)) from None
        if not reply.get("ok"):
            raise LinkError(str(reply.get("error") or f"{cmd} failed"))
        return reply

    # ------------------------------------------------------------ commands

    def status(self) -> Status:
        """Never raises: a missing or failing daemon is a state too."""
        try:
            return classify(self.request("status"))
        except NotRunning:
            return classify(None)
        except LinkError as e:
            return classify(None, str(e))

    def get(self, key: str | None = None) -> Any:
        return self.request("get", **({"key": key} if key else {}))["value"]

    def set(self, key: str, value: Any) -> dict:
        return self.request("set", key=key, value=value)

    def pause(self) -> None:
        self.request("pause")

    def resume(self) -> None:
        self.request("resume")

    def reload(self) -> dict:
        return self.request("reload")

    def snapshot(self) -> bytes:
        """PNG bytes of the current output frame."""
        reply = self.request("snapshot")
        return base64.b64decode(reply["data"])

    def running(self) -> bool:
        try:
            self.request("status")
            return True
        except LinkError:
            return False

    # ------------------------------------------------------------ starting it

    def start(self, *, wait: float = 0.0, extra_args: list[str] | None = None) -> str:
        """Start the daemon: the systemd user unit when installed, else ``livebg run``.

        Returns a line saying how. With ``wait`` > 0, waits that many seconds
        for the socket to answer and raises LinkError if it does not.
        """
        from livebg.system import autostart

        if autostart.unit_installed() and not extra_args:
            r = subprocess.run(["systemctl", "--user", "start", autostart.UNIT],
                               capture_output=True, text=True, timeout=30)
            if r.returncode != 0:
                raise LinkError(f"systemctl --user start {autostart.UNIT} failed: "
                                f"{(r.stderr or r.stdout).strip()}")
            how = f"started with systemctl --user start {autostart.UNIT}"
        else:
            log_path = config_mod.runtime_dir() / "daemon.log"
            log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            cmd = [sys.executable, "-m", "livebg", "run", *(extra_args or [])]
            with open(log_path, "ab") as out:
                self._child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                               stderr=subprocess.STDOUT,
                                               start_new_session=True, close_fds=True,
                                               env=os.environ.copy())
            how = f"started `livebg run` (pid {self._child.pid}, log {log_path})"
        log.info("%s", how)
        if wait > 0:
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if self.running():
                    return how
                if self._child is not None and self._child.poll() is not None:
                    raise LinkError(f"livebg run exited with status {self._child.returncode}; "
                                    f"see {config_mod.runtime_dir() / 'daemon.log'}")
                time.sleep(0.1)
            raise LinkError(f"livebg did not answer within {wait:g} s after it was started")
        return how

    def reap(self) -> None:
        """Collect a child daemon that exited (no zombie); a running one keeps running."""
        if self._child is not None and self._child.poll() is not None:
            self._child = None


def camera_choices() -> list[tuple[str, str]]:
    """(value for camera.device, label) for every camera that is not a virtual one.

    Linux: the ``/dev/video*`` capture nodes (not v4l2loopback, not a UVC
    camera's metadata node); elsewhere the indices 0-3.
    """
    from livebg.system.devices import video_devices

    out = []
    sys_class = Path("/sys/class/video4linux")
    for dev, name, loop in video_devices():
        if loop:
            continue
        index = sys_class / Path(dev).name / "index"
        try:
            if index.read_text().strip() not in ("", "0"):
                continue  # a second node of the same camera (metadata)
        except OSError:
            pass
        out.append((dev, f"{name} ({dev})"))
    if not out and not sys_class.is_dir():
        out = [(str(i), f"camera {i}") for i in range(4)]
    return out
