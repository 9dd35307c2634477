"""Reconfiguration while running: the watched configuration file, and what a change rebuilds.

:class:`ConfigFile` is the daemon's file plus its command-line overrides; it
notices a change once the file has stopped changing (editors write in steps).
:func:`plan` says what a new configuration means for the running engine:
which sections changed, the processor to use (rebuilt only when a processing
section changed; only the compositor for a background change), whether the
source must be reopened, and which changes wait for a restart.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from livebg import config as config_mod
from livebg.config import Config
from livebg.stats import StageStats

# Sections whose change is applied by rebuilding the processing stages;
# unknown sections added later default to the same (the safe choice).
RESTART_SECTIONS = {"output", "overlay"}
SOURCE_SECTIONS = {"input", "camera"}
LIVE_SECTIONS = {"log", "daemon"}
SETTLE = 0.2  # seconds a changed file must stay unchanged before it is read


class ConfigFile:
    """The configuration file and the overrides laid over it.

    Args:
        path: the file; None for the user's (``$XDG_CONFIG_HOME/livebg/config.yaml``),
            which may be absent (then the defaults hold until it appears).
        overrides: ``{key: value}`` applied after the file on every load.
    """

    def __init__(self, path: Path | None, overrides: dict[str, Any] | None = None):
        self.path = Path(path) if path else config_mod.user_config_path()
        self.explicit = path is not None
        self.overrides = dict(overrides or {})
        self._last = self._stat()
        self._pending: tuple | None = None
        self._pending_since = 0.0

    def load(self) -> Config:
        """Defaults, the file, then the overrides, through the same loader as the first load
        (overrides set together, so ``--background beach.jpg`` holds on every reload).

        Raises ConfigError, also for a file left empty (an editor saving it):
        the caller keeps the configuration it has.
        """
        return config_mod.load(self.path if self.explicit else None, self.overrides,
                               empty_ok=False)

    def _stat(self) -> tuple | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def changed(self) -> bool:
        """True once per change, when the file has stayed the same for ``SETTLE`` seconds."""
        stat = self._stat()
        if stat == self._last:
            self._pending = None
            return False
        if stat != self._pending:
            self._pending = stat
            self._pending_since = time.monotonic()
            return False
        if time.monotonic() - self._pending_since < SETTLE:
            return False
        self._last = stat
        self._pending = None
        return True


@dataclasses.dataclass
class Change:
    changed: list[str]        # top-level sections that differ
    processor: Any            # the processor to run with from now on
    reopen: bool              # the source must be reopened
    restart: list[str]        # what takes effect only after a restart


def plan(old: Config, new: Config, processor, size: tuple[int, int],
         stats: StageStats) -> Change:
    """What switching from ``old`` to ``new`` takes; builds the new stages.

    Raises what building a stage raises (ModelError, ValueError...); the
    running stages are untouched then.
    """
    from livebg.factory import make_compositor, make_processor, make_subject
    from livebg.processor import Processor

    changed = [f.name for f in dataclasses.fields(Config)
               if getattr(old, f.name) != getattr(new, f.name)]
    proc = processor
    swapped = {"background", "subject"}  # applied by swapping one stage, the net kept
    rebuild = [c for c in changed
               if c not in RESTART_SECTIONS | SOURCE_SECTIONS | LIVE_SECTIONS | swapped]
    if rebuild and proc is not None:
        proc = make_processor(new, *size, stats=stats)
    elif swapped & set(changed) and proc is not None:
        compositor = make_compositor(new) if "background" in changed else proc.compositor
        subject = make_subject(new) if "subject" in changed else proc.subject
        proc = Processor(proc.segmenter, proc.refiner, compositor, proc.temporal,
                         stats=stats, still=getattr(proc, "still", None), subject=subject)
    restart = [c for c in changed if c in RESTART_SECTIONS]
    if new.daemon.socket != old.daemon.socket:
        restart.append("daemon.socket")
    return Change(changed, proc, bool(SOURCE_SECTIONS & set(changed)), restart)
