"""What an output name means, without opening anything (the configuration checks it too).

``virtual``, ``overlay``, ``window`` and ``null`` are named sinks; a name with
a video suffix is a video file; a folder of PNG frames is named explicitly,
with a trailing ``/`` or as an existing folder. Anything else is a mistake:
a typo such as ``virtal`` must not silently become a folder filling the disk.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

SINK_NAMES = ("virtual", "overlay", "window", "null")
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi", ".mkv")  # the keys of files.VIDEO_SUFFIXES


class SinkNameError(ValueError):
    """An output name that names nothing; the message says what to write instead."""


def sink_kind(spec: str) -> str:
    """``named``, ``video`` or ``png`` for an output name; SinkNameError otherwise."""
    if spec in SINK_NAMES:
        return "named"
    if spec.endswith(("/", os.sep)) or Path(spec).expanduser().is_dir():
        return "png"
    if Path(spec).suffix.lower() in VIDEO_SUFFIXES:
        return "video"
    close = difflib.get_close_matches(spec, SINK_NAMES, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    folder = "" if close else f" (e.g. {spec}/)"
    raise SinkNameError(f"output {spec!r} names nothing: {hint}use {', '.join(SINK_NAMES)}, a "
                        f"video file ({' '.join(VIDEO_SUFFIXES)}), or a folder for PNG frames "
                        f"written with a trailing /{folder}")
