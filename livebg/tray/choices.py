"""What the menu and the settings window offer, from the configuration's schema. No Qt here.

The choices of an option and their descriptions come from
:class:`livebg.config.Config`'s field metadata, so a new refinement mode or
net shows up in the tray without a tray change; the backgrounds folder and
the file-extension rule (:mod:`livebg.stages.sources`) are the same as the
command line's.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from livebg import config as config_mod
from livebg.config import Config


def field_choices(key: str) -> tuple[str, ...]:
    """The allowed values of a choice option, straight from the schema."""
    section, name = key.split(".")
    cls = type(getattr(Config(), section))
    return tuple(next(f for f in dataclasses.fields(cls) if f.name == name).metadata["choices"])


def choice_labels(key: str) -> dict[str, str]:
    """``{choice: description}`` from the option's help, e.g. ``"sss (graph solve ...)"``."""
    import re

    section, name = key.split(".")
    cls = type(getattr(Config(), section))
    text = next(f for f in dataclasses.fields(cls) if f.name == name).metadata["help"]
    found = dict(re.findall(r"\b([a-z]+) \(([^()]*)\)", text))
    return {c: found.get(c, "") for c in field_choices(key)}


def choice_name(choice: str) -> str:
    return choice.upper() if len(choice) <= 3 else choice.capitalize()


def backgrounds_dir() -> Path:
    """``$XDG_CONFIG_HOME/livebg/backgrounds``: pictures offered in the menu."""
    return config_mod.config_home() / "backgrounds"


def media_kind(path: str | Path) -> str | None:
    """``image``, ``video`` or None from a file name's extension."""
    from livebg.stages.sources import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    return None


def background_files() -> list[Path]:
    d = backgrounds_dir()
    if not d.is_dir():
        return []
    return sorted((p for p in d.iterdir() if p.is_file() and media_kind(p)),
                  key=lambda p: p.name.lower())


def file_filter() -> str:
    from livebg.stages.sources import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

    images = " ".join(f"*{e}" for e in sorted(IMAGE_EXTENSIONS))
    videos = " ".join(f"*{e}" for e in sorted(VIDEO_EXTENSIONS))
    return f"Images and videos ({images} {videos});;Images ({images});;Videos ({videos})"
