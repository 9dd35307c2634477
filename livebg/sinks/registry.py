"""Open a sink by name: a registry of named sinks, and the rule for file outputs.

``virtual``, ``overlay``, ``window`` and ``null`` are looked up in
:data:`NAMED`; a known video suffix is a
:class:`~livebg.sinks.files.VideoFileSink`; a folder named with a trailing
``/`` (or an existing folder) a :class:`~livebg.sinks.files.PngSequenceSink`;
anything else is an error with a suggestion (:func:`livebg.sinks.names.sink_kind`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from livebg.sinks.base import Sink, SinkError
from livebg.sinks.files import PngSequenceSink, VideoFileSink
from livebg.sinks.names import SinkNameError, sink_kind
from livebg.sinks.null import NullSink
from livebg.sinks.overlay import OverlaySink
from livebg.sinks.virtual import VirtualCameraSink
from livebg.sinks.window import WindowSink


@dataclass(frozen=True)
class SinkOptions:
    """What any sink may need to open.

    Attributes:
        width, height: frame size in pixels.
        fps: frames per second the sink should expect (> 0).
        device: virtual camera device such as ``/dev/video10``; empty: the first one.
        overwrite: allow replacing existing output files.
        overlay: keyword options of :class:`~livebg.sinks.overlay.OverlaySink`.
    """

    width: int
    height: int
    fps: float
    device: str = ""
    overwrite: bool = False
    overlay: dict[str, Any] = field(default_factory=dict)


NAMED: dict[str, Callable[[SinkOptions], Sink]] = {  # one entry per names.SINK_NAMES
    "virtual": lambda o: VirtualCameraSink(o.width, o.height, o.fps, device=o.device or None),
    "overlay": lambda o: OverlaySink(o.width, o.height, o.fps, **o.overlay),
    "window": lambda o: WindowSink(o.width, o.height),
    "null": lambda o: NullSink(o.width, o.height),
}


def open_sink(spec: str, width: int, height: int, fps: float, *, device: str = "",
              overwrite: bool = False, overlay: dict | None = None) -> Sink:
    """Open the sink named by ``spec``: a name in :data:`NAMED`, FILE.mp4 (etc.), or DIR.

    Raises:
        SinkError: the sink cannot be opened, or ``spec`` names nothing we know.
    """
    opts = SinkOptions(width, height, fps, device=device, overwrite=overwrite,
                       overlay=dict(overlay or {}))
    try:
        kind = sink_kind(spec)
    except SinkNameError as e:
        raise SinkError(str(e)) from None
    if kind == "named":
        return NAMED[spec](opts)
    path = Path(spec).expanduser()
    if kind == "video":
        return VideoFileSink(path, width, height, fps, overwrite=overwrite)
    return PngSequenceSink(path, width, height, overwrite=overwrite)
