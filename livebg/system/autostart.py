""""Start at login": the systemd user unit where there is one, else XDG autostart.

Where a systemd user manager answers, "on" writes ``livebg.service`` (the
shipped unit, its ``ExecStart`` pointing at this installation's ``livebg``)
to ``$XDG_CONFIG_HOME/systemd/user/`` unless a unit of the user's own is
already there, then ``systemctl --user enable livebg.service``. Elsewhere it
writes or removes ``$XDG_CONFIG_HOME/autostart/livebg.desktop``, which
desktop sessions run at login. Both start the daemon (``livebg run``); the
tray is not needed for the effect to work. ``livebg autostart on|off|status``
and the tray's "Start livebg at login" both come here. No Qt here.
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


def config_base() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def desktop_path() -> Path:
    return config_base() / "autostart" / "livebg.desktop"


def unit_path() -> Path:
    """Where :func:`install_unit` writes the unit (the user's systemd unit folder)."""
    return config_base() / "systemd" / "user" / UNIT


def command(*args: str) -> list[str]:
    """This installation's ``livebg ARGS``: the script beside the interpreter, else ``-m``."""
    exe = Path(sys.executable)
    script = exe.parent / ("livebg.exe" if sys.platform == "win32" else "livebg")
    return [str(script), *args] if script.is_file() else [str(exe), "-m", "livebg", *args]


def _exec_line() -> str:
    return " ".join(shlex.quote(c) for c in command("run"))


MARKER = "# Written by `livebg autostart on`; once you edit it, livebg leaves it alone."


def render_unit() -> str:
    """The shipped unit with ExecStart set to this installation (``%`` escaped for systemd)."""
    from livebg.system import shipped

    exec_start = _exec_line().replace("%", "%%")
    lines = [f"ExecStart={exec_start}" if line.startswith("ExecStart=") else line
             for line in shipped.text(UNIT).splitlines()]
    return MARKER + "\n" + "\n".join(lines) + "\n"


def _without_exec(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("ExecStart=")]


def install_unit() -> str:
    """Write :func:`render_unit` to :func:`unit_path` unless the user's own unit is there.

    Returns one line saying what was done. Raises AutostartError when it cannot write.
    """
    path = unit_path()
    new = render_unit()
    try:
        old = path.read_text(encoding="utf-8") if path.exists() else None
    except OSError as e:
        raise AutostartError(f"{path}: {e.strerror}") from None
    if old == new:
        return f"{path} is up to date"
    if old is not None and _without_exec(old) != _without_exec(new):
        return f"kept your own {path} (it differs from livebg's)"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(new, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        raise AutostartError(f"{path}: {e.strerror}") from None
    try:
        _systemctl("daemon-reload")
    except (OSError, subprocess.TimeoutExpired) as e:
        raise AutostartError(f"systemctl --user daemon-reload: {e}") from None
    return f"wrote {path}"


def backend() -> str:
    """``systemd`` or ``xdg``: how :func:`set_enabled` will do it."""
    return "systemd" if systemd_user() else "xdg"


def is_enabled(use: str | None = None) -> bool:
    use = use or backend()
    if use == "systemd":
        try:
            return _systemctl("is-enabled", UNIT).stdout.strip() in ("enabled", "enabled-runtime")
        except (OSError, subprocess.TimeoutExpired):
            return False
    return desktop_path().is_file()


def describe(use: str | None = None) -> str:
    """One line for ``livebg autostart status``: on or off, and how."""
    use = use or backend()
    on = "on" if is_enabled(use) else "off"
    if use == "systemd":
        where = unit_path() if unit_path().is_file() else "not installed"
        return f"start at login: {on} (systemd user unit {UNIT}: {where})"
    return f"start at login: {on} (XDG autostart entry {desktop_path()})"


def set_enabled(on: bool, use: str | None = None) -> str:
    """Start livebg at login (or not). Returns one line saying what was done.

    Raises:
        AutostartError: systemctl failed, or a file cannot be written.
    """
    use = use or backend()
    if use == "systemd":
        done = install_unit() + "; " if on else ""
        verb = "enable" if on else "disable"
        try:
            r = _systemctl(verb, UNIT)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise AutostartError(f"systemctl --user {verb} {UNIT}: {e}") from None
        if r.returncode != 0:
            if not on and not unit_installed():
                return f"{UNIT} is not installed: nothing to disable"
            raise AutostartError(f"systemctl --user {verb} {UNIT} failed: "
                                 f"{(r.stderr or r.stdout).strip()}")
        return f"{done}systemctl --user {verb} {UNIT}"
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
