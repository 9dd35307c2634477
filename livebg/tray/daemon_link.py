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
    problem: str = ""                # why a daemon the tray started stopped, with the fix


@dataclass
class Exited:
    """A daemon the tray started that has ended: its exit status and why (from its log)."""

    returncode: int
    reason: str                      # its last error line, e.g. "no usable v4l2loopback ..."
    log: Path | None = None

    def summary(self) -> str:
        """The reason's first clause, for a status line ("no usable v4l2loopback device")."""
        import re

        head = re.split(r" \(|; |: run", self.reason, maxsplit=1)[0].strip()
        return head if len(head) <= 70 else head[:69] + "…"

    def message(self) -> str:
        """One line for the user: what happened, why, and what to do."""
        where = f"; its log: {self.log}" if self.log else \
            "; its log: journalctl --user -u livebg"
        return (f"livebg stopped (exit status {self.returncode}): {self.reason}{where}; "
                "`livebg doctor` checks the whole setup")


def last_error(text: str) -> str:
    """The line of a daemon's output that says why it stopped (its last error line).

    ``livebg: error: ...`` (what the command line prints for a problem the
    user can fix) wins; else the last ERROR or CRITICAL log line; else the
    last line. The ``livebg: error:`` prefix and a log line's time stamp go.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("livebg: error:"):
            return line[len("livebg: error:"):].strip()
    for line in reversed(lines):
        for level in (" ERROR ", " CRITICAL "):
            if level in line:
                return line.split(level, 1)[1].split(": ", 1)[-1].strip()
    return lines[-1] if lines else "no output"


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
        self._log_from = 0               # where the child's output starts in daemon.log
        self._unit_started = False       # we ran `systemctl --user start`

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

    @staticmethod
    def log_path() -> Path:
        """Where a daemon started by :meth:`start` writes its output."""
        return config_mod.runtime_dir() / "daemon.log"

    def start(self, *, wait: float = 0.0, extra_args: list[str] | None = None) -> str:
        """Start the daemon: the systemd user unit when installed, else ``livebg run``.

        Returns a line saying how. With ``wait`` > 0, waits that many seconds
        for the socket to answer and raises LinkError (with the daemon's last
        error line) if it does not. With ``wait`` 0 it returns at once:
        :meth:`exited` says later whether the daemon ended, and why.
        """
        from livebg.system import autostart

        if autostart.unit_installed() and not extra_args:
            r = subprocess.run(["systemctl", "--user", "start", autostart.UNIT],
                               capture_output=True, text=True, timeout=30)
            if r.returncode != 0:
                raise LinkError(f"systemctl --user start {autostart.UNIT} failed: "
                                f"{(r.stderr or r.stdout).strip()}")
            self._unit_started = True
            how = f"starting livebg with systemctl --user start {autostart.UNIT}"
        else:
            from livebg.system.safepaths import UnsafePath, open_log

            log_path = self.log_path()
            try:
                fd = open_log(log_path)
            except UnsafePath as e:
                raise LinkError(str(e)) from None
            cmd = [sys.executable, "-m", "livebg", "run", *(extra_args or [])]
            with os.fdopen(fd, "ab") as out:
                self._log_from = out.tell()
                self._child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                               stderr=subprocess.STDOUT,
                                               start_new_session=True, close_fds=True,
                                               env=os.environ.copy())
            how = f"starting `livebg run` (pid {self._child.pid}, log {log_path})"
        log.info("%s", how)
        if wait > 0:
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if self.running():
                    return how
                ended = self.exited()
                if ended is not None:
                    raise LinkError(ended.message())
                time.sleep(0.1)
            raise LinkError(f"livebg did not answer within {wait:g} s after it was started")
        return how

    def exited(self) -> Exited | None:
        """The daemon this link started, if it has ended since (None: running, or none started).

        Reaps the child (no zombie). A clean exit (status 0) is None too.
        """
        if self._child is not None:
            rc = self._child.poll()
            if rc is None:
                return None
            self._child = None  # reaped: no zombie
            if rc == 0:
                return None
            try:
                with open(self.log_path(), "rb") as f:
                    f.seek(self._log_from)
                    text = f.read().decode("utf-8", errors="replace")
            except OSError:
                text = ""
            return Exited(rc, last_error(text), self.log_path())
        if self._unit_started:
            return self._unit_failure()
        return None

    def _unit_failure(self) -> Exited | None:
        from livebg.system import autostart

        try:
            r = subprocess.run(["systemctl", "--user", "show", autostart.UNIT, "-p",
                                "ActiveState,ExecMainStatus"], capture_output=True, text=True,
                               timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        props = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
        if props.get("ActiveState") not in ("failed", "inactive"):
            return None
        self._unit_started = False
        rc = int(props.get("ExecMainStatus") or 0)
        if rc == 0 and props.get("ActiveState") == "inactive":
            return None
        try:
            j = subprocess.run(["journalctl", "--user", "-u", autostart.UNIT, "-n", "40", "-o",
                                "cat", "--no-pager"], capture_output=True, text=True, timeout=10)
            text = j.stdout
        except (OSError, subprocess.TimeoutExpired):
            text = ""
        return Exited(rc, last_error(text), None)


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
