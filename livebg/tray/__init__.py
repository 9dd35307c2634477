"""The tray app (optional extra ``livebg[tray]``): ``livebg tray``.

An icon next to the clock that shows whether the effect is on, a menu to
switch backgrounds, cameras and quality, and a settings window. It talks to
the daemon only through its control socket (:mod:`livebg.tray.daemon_link`)
and saves changes to the user's ``config.yaml`` (:mod:`livebg.tray.persist`).

Only this package imports Qt; ``import livebg.tray`` itself does not, so the
command line can say what to install when PySide6 is missing. It does keep
OpenCV's bundled Qt out of ours (:mod:`livebg.tray.qtenv`), before any of its
modules imports PySide6.
"""

from __future__ import annotations

import importlib.util

from livebg.tray.qtenv import keep_apart

keep_apart()

INSTALL_HINT = 'pip install "livebg[tray]"'


def missing() -> list[str]:
    """The tray's dependencies that are not installed (empty: all there)."""
    need = {"PySide6": "PySide6-Essentials", "ruamel.yaml": "ruamel.yaml"}
    out = []
    for module, package in need.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            out.append(package)
    return out


def x11_problem() -> str | None:
    """Why Qt would abort on X11 (a missing system library, with the fix), or None.

    Checked only where Qt will use its xcb plugin: Linux, no Wayland session
    and no other platform chosen with QT_QPA_PLATFORM.
    """
    import os
    import sys

    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if not sys.platform.startswith("linux") or platform not in ("", "xcb"):
        return None
    if not platform and os.environ.get("WAYLAND_DISPLAY"):
        return None
    from livebg.system.doctor import check_tray_libraries

    for check in check_tray_libraries():
        if check.ok is False:
            return f"{check.detail}; fix: {' or '.join(check.fixes)}"
    return None


def main(*, start_daemon: bool = True) -> int:
    """``livebg tray``; 2 (after one line saying what to install) where Qt would abort."""
    import sys

    problem = x11_problem()
    if problem:
        print(f"livebg: error: {problem}", file=sys.stderr)
        return 2
    from livebg.tray.app import main as run

    return run(start_daemon=start_daemon)
