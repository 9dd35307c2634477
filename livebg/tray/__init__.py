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


def main(*, start_daemon: bool = True) -> int:
    from livebg.tray.app import main as run

    return run(start_daemon=start_daemon)
