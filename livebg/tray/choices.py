"""What the tray offers: choices from the configuration schema, background files.

Shared by the menu (:mod:`livebg.tray.app`) and the settings window
(:mod:`livebg.tray.settings`), so neither imports the other.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from livebg import config as config_mod
from livebg.config import Config
from livebg.stages.media import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, media_kind

__all__ = ["background_files", "backgrounds_dir", "choice_labels", "choice_name",
           "field_choices", "file_filter", "media_kind"]


def field_choices(key: str) -> tuple[str, ...]:
    """The allowed values of a choice option, straight from the schema."""
    section, _, name = key.rpartition(".")
    cls = type(getattr(Config(), section)) if section else Config
    return tuple(next(f for f in dataclasses.fields(cls) if f.name == name).metadata["choices"])


def choice_labels(key: str) -> dict[str, str]:
    """``{choice: description}`` from the option's help, e.g. ``"sss (graph solve ...)"``."""
    section, _, name = key.rpartition(".")
    cls = type(getattr(Config(), section)) if section else Config
    text = next(f for f in dataclasses.fields(cls) if f.name == name).metadata["help"]
    found = dict(re.findall(r"\b([a-z]+) \(([^()]*)\)", text))
    return {c: found.get(c, "") for c in field_choices(key)}


def choice_name(choice: str) -> str:
    return choice.upper() if len(choice) <= 3 else choice.capitalize()


def backgrounds_dir() -> Path:
    """``$XDG_CONFIG_HOME/livebg/backgrounds``: pictures offered in the menu."""
    return config_mod.config_home() / "backgrounds"


def background_files() -> list[Path]:
    d = backgrounds_dir()
    if not d.is_dir():
        return []
    return sorted((p for p in d.iterdir() if p.is_file() and media_kind(p)),
                  key=lambda p: p.name.lower())


def file_filter() -> str:
    images = " ".join(f"*{e}" for e in sorted(IMAGE_EXTENSIONS))
    videos = " ".join(f"*{e}" for e in sorted(VIDEO_EXTENSIONS))
    return f"Images and videos ({images} {videos});;Images ({images});;Videos ({videos})"
