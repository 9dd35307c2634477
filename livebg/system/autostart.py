""""Start at login": the systemd user unit where there is one, else XDG autostart.

With a systemd user manager and ``livebg.service`` installed, the switch is
``systemctl --user enable|disable livebg.service``. Elsewhere it writes or
removes ``$XDG_CONFIG_HOME/autostart/livebg.desktop``, which desktop sessions
run at login. Both start the daemon (``livebg run``); the tray is not needed
for the effect to work. No Qt here.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

UNIT = "livebg.service"

DESKTOP_ENTRY = """\
[Desktop Entry]
Type=Application
Name=livebg
Comment=Webcam background replacement (virtual camera)
Exec={exec}
Icon=livebg
Terminal=false
NoDisplay=true
X-GNOME-Autostart-enabled=true
"""


class AutostartError(RuntimeError):
    """The login setting could not be changed (one line: why)."""


def _systemctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["systemctl", "--user", *args], capture_output=True, text=True,
                          timeout=20)


def systemd_user() -> bool:
    """A systemd user manager answers."""
    if shutil.which("systemctl") is None:
        return False
    try:
        return _systemctl("show-environment").returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def unit_installed() -> bool:
    """``livebg.service`` is known to the user's systemd."""
    if not systemd_user():
        return False
    try:
        r = _systemctl("list-unit-files", "--no-legend", UNIT)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0 and UNIT in r.stdout


def desktop_path() -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "autostart" / "livebg.desktop"


def _exec_line() -> str:
    exe = shutil.which("livebg")
    cmd = [exe, "run"] if exe else [sys.executable, "-m", "livebg", "run"]
    return " ".join(shlex.quote(c) for c in cmd)


def backend() -> str:
    """``systemd`` or ``xdg``: how :func:`set_enabled` will do it."""
    return "systemd" if unit_installed() else "xdg"


def is_enabled(use: str | None = None) -> bool:
    use = use or backend()
    if use == "systemd":
        try:
            return _systemctl("is-enabled", UNIT).stdout.strip() in ("enabled", "enabled-runtime")
        except (OSError, subprocess.TimeoutExpired):
            return False
    return desktop_path().is_file()


def set_enabled(on: bool, use: str | None = None) -> str:
    """Start livebg at login (or not). Returns one line saying what was done.

    Raises:
        AutostartError: systemctl failed, or the autostart file cannot be written.
    """
    use = use or backend()
    if use == "systemd":
        verb = "enable" if on else "disable"
        try:
            r = _systemctl(verb, UNIT)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise AutostartError(f"systemctl --user {verb} {UNIT}: {e}") from None
        if r.returncode != 0:
            raise AutostartError(f"systemctl --user {verb} {UNIT} failed: "
                                 f"{(r.stderr or r.stdout).strip()}")
        return f"systemctl --user {verb} {UNIT}"
    path = desktop_path()
    try:
        if on:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(DESKTOP_ENTRY.format(exec=_exec_line()), encoding="utf-8")
            os.replace(tmp, path)
            return f"wrote {path}"
        if path.exists():
            path.unlink()
            return f"removed {path}"
        return f"{path} was not there"
    except OSError as e:
        raise AutostartError(f"{path}: {e.strerror}") from None
