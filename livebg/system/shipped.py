"""The files livebg ships beside its code: default.yaml, livebg.service, livebg.desktop, icon.

A source checkout has them in the repository's ``config/``; a wheel carries
the same files as ``livebg/share/`` (pyproject's force-include), so pip users
get them too: ``livebg config --print-default`` and ``livebg autostart on``
read them from here, ``livebg config --shipped NAME`` prints where one is.
"""

from __future__ import annotations

from pathlib import Path

NAMES = ("default.yaml", "livebg.service", "livebg.desktop")
ICON = "icon.svg"  # the tray's icon, part of the package itself (livebg/tray/icon.svg)


def folders() -> list[Path]:
    """Where the shipped files are looked for, first match wins (wheel, then checkout)."""
    package = Path(__file__).resolve().parent.parent
    return [package / "share", package.parent / "config"]


def path(name: str) -> Path:
    """The shipped file ``name`` (one of :data:`NAMES`, or :data:`ICON`).

    Raises:
        FileNotFoundError: the installation lacks it (the message says where it looked).
    """
    if name == ICON:
        return Path(__file__).resolve().parent.parent / "tray" / ICON
    for d in folders():
        p = d / name
        if p.is_file():
            return p
    raise FileNotFoundError(f"{name} is not in {' or '.join(str(d) for d in folders())}: "
                            "reinstall livebg")


def text(name: str) -> str:
    return path(name).read_text(encoding="utf-8")
