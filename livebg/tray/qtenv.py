"""Keep OpenCV's bundled Qt out of the tray's Qt (PySide6). No Qt here.

The opencv-python wheels ship a Qt 5 of their own for HighGUI, and importing
``cv2`` sets ``QT_QPA_PLATFORM_PLUGIN_PATH`` (and ``QT_QPA_FONTDIR``) to
folders inside the ``cv2`` package. PySide6's Qt 6 reads the same variables:
on a stock Debian 12 desktop it found cv2's ``xcb`` platform plugin first
and aborted the tray with SIGABRT. :func:`keep_apart` imports ``cv2`` once
(so a later import cannot set them again: a module runs only on its first
import) and removes every entry of those variables that points into the
``cv2`` package, keeping any the user set elsewhere.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import MutableMapping
from pathlib import Path

log = logging.getLogger(__name__)

QT_VARIABLES = ("QT_QPA_PLATFORM_PLUGIN_PATH", "QT_PLUGIN_PATH", "QT_QPA_FONTDIR")


def _cv2_dir() -> Path | None:
    try:
        spec = importlib.util.find_spec("cv2")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).resolve().parent


def _inside(path: str, folder: Path) -> bool:
    try:
        return Path(path).resolve().is_relative_to(folder)
    except (OSError, ValueError):
        return False


def keep_apart(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Import cv2, then drop its Qt folders from the Qt variables; returns what was removed.

    Call before PySide6 is imported (:mod:`livebg.tray` does, on import).
    """
    environ = os.environ if environ is None else environ
    folder = _cv2_dir()
    if folder is None:
        return []
    try:
        import cv2  # noqa: F401 - its first import sets the variables; do it before we clean
    except ImportError:
        return []
    removed = []
    for name in QT_VARIABLES:
        value = environ.get(name)
        if not value:
            continue
        entries = value.split(os.pathsep)
        keep = [e for e in entries if e and not _inside(e, folder)]
        if len(keep) == len([e for e in entries if e]):
            continue
        removed.append(f"{name}={value}")
        if keep:
            environ[name] = os.pathsep.join(keep)
        else:
            del environ[name]
    if removed:
        log.debug("not using OpenCV's Qt: removed %s", "; ".join(removed))
    return removed
