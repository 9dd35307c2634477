"""Saving settings to the user's ``config.yaml`` without losing anything.

The file is edited as a document, not regenerated: ruamel.yaml's round-trip
mode keeps comments, key order, quoting and keys this tray does not know
about. A change is validated with :mod:`livebg.config` as the whole new file
before it is written, and written atomically (a temporary file in the same
folder, flushed, then ``os.replace``), so the daemon's file watcher never
reads half a file. A file that does not parse is never overwritten: the
caller gets a :class:`PersistError` that says so, and the bytes stay as they
were. No Qt here; the tray and the tests call :func:`save` directly.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from livebg import config as config_mod
from livebg.config import Config, ConfigError

log = logging.getLogger(__name__)


class PersistError(RuntimeError):
    """The change was not saved; the message says why and what to do (one line).

    ``parse`` is True when the existing file itself is unusable (not YAML, not
    a mapping): the change may still be applied live, just not saved.
    """

    def __init__(self, message: str, *, parse: bool = False):
        super().__init__(message)
        self.parse = parse


def _yaml():
    from ruamel.yaml import YAML

    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.indent(mapping=2, sequence=4, offset=2)
    y.width = 100
    return y


def _load_document(path: Path, text: str):
    """The round-trip document of ``text`` (an empty mapping for an empty file)."""
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.error import YAMLError

    try:
        doc = _yaml().load(text)
    except YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or "syntax error"
        raise PersistError(f"{path}: not valid YAML{line} ({problem}); not saved - the file was "
                           "left unchanged, fix it or move it away",
                           parse=True) from None
    if doc is None:
        return CommentedMap()
    if not isinstance(doc, dict):
        raise PersistError(f"{path}: expected a mapping of keys to values, got "
                           f"{type(doc).__name__}; not saved - the file was left unchanged",
                           parse=True)
    return doc


def _plain(value: Any) -> Any:
    """JSON/config values as plain YAML scalars (no Python tags in the file)."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _assign(doc, key: str, value: Any) -> None:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    parts = key.split(".")
    node = doc
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = CommentedMap()
            node[part] = child
        node = child
    value = _plain(value)
    old = node.get(parts[-1])
    if isinstance(value, list) and isinstance(old, CommentedSeq) and old.fa.flow_style():
        value = CommentedSeq(value)
        value.fa.set_flow_style()  # `sinks: [virtual]` stays on one line
    node[parts[-1]] = value


def save(changes: dict[str, Any], path: Path | None = None) -> Config:
    """Write ``changes`` (dotted key -> value) into the configuration file.

    Args:
        changes: e.g. ``{"background.mode": "blur", "background.blur": 0.8}``;
            each key is checked against :class:`livebg.config.Config`.
        path: the file (default: :func:`livebg.config.user_config_path`); it
            and its folder are created when missing.

    Returns:
        The configuration the new file describes (defaults + file).

    Raises:
        PersistError: the file does not parse, the result would not be a valid
            configuration, or it cannot be written. The file is unchanged.
    """
    path = Path(path) if path is not None else config_mod.user_config_path()
    try:
        original = path.read_bytes()
    except FileNotFoundError:
        original = None
    except OSError as e:
        raise PersistError(f"{path}: cannot read ({e.strerror}); not saved") from None
    text = original.decode("utf-8", errors="replace") if original is not None else ""
    doc = _load_document(path, text)
    if original is not None:
        try:
            config_mod.load_file(path)
        except ConfigError as e:  # already broken: saving would keep or hide the problem
            raise PersistError(f"{e}; not saved - fix the file first", parse=True) from None
    for key, value in changes.items():
        _assign(doc, key, value)
    out = io.StringIO()
    _yaml().dump(doc, out)
    new_text = out.getvalue()

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise PersistError(f"{path.parent}: cannot write ({e.strerror}); not saved") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(new_text)
            f.flush()
            os.fsync(f.fileno())
        try:
            cfg = config_mod.load_file(tmp)
        except ConfigError as e:
            msg = str(e).replace(str(tmp), str(path))
            raise PersistError(f"{msg}; not saved - the file was left unchanged") from None
        mode = path.stat().st_mode & 0o777 if original is not None else 0o644
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as e:
        raise PersistError(f"{path}: cannot write ({e.strerror}); not saved") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    log.info("saved %s to %s", ", ".join(f"{k}={v!r}" for k, v in changes.items()), path)
    return cfg


def load(path: Path | None = None) -> tuple[Config, str | None]:
    """(configuration, problem): the file's settings, or the defaults and why not."""
    path = Path(path) if path is not None else config_mod.user_config_path()
    if not path.is_file():
        return Config(), None
    try:
        return config_mod.load_file(path), None
    except ConfigError as e:
        return Config(), str(e)
