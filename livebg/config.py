"""Typed configuration: schema, YAML loading, validation, XDG paths, overrides.

The dataclasses below are the single source of truth for every option and
its default; ``config/default.yaml`` documents the same values (a test keeps
the two in step). Values are validated field by field from each field's
metadata, so an error names the file, the key, the value and what is allowed
in one line::

    ~/.config/livebg/config.yaml: background.blur = 3: must be a number from 0 to 1

Layering, lowest first: defaults, the user's file, command-line overrides.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import errno
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from livebg.sinks.names import SinkNameError, sink_kind


class ConfigError(ValueError):
    """A configuration problem, with a one-line message that says what to do."""


# A configuration file is a few kB (default.yaml, every option documented, is 5 kB);
# anything beyond this is the wrong file, and parsing 50 MB stalls for 10-26 s.
MAX_CONFIG_BYTES = 1 << 20
# The schema nests two levels; YAML's composer recurses per level (2,000 nested
# `[` overflow Python's stack).
MAX_DEPTH = 20
# The longest number any option takes is a few digits; Python refuses ints of
# more than 4,300 digits and a 400-digit float is inf.
MAX_NUMBER_CHARS = 40


def _opt(default: Any, help: str, *, choices: tuple | None = None,
         lo: float | None = None, hi: float | None = None, kind: str | None = None):
    """A field with validation metadata.

    ``kind`` is a special string type: "color" (#rrggbb) or "path" (may be
    empty); plain Python types are taken from the annotation's default.
    """
    meta = {"help": help, "choices": choices, "lo": lo, "hi": hi, "kind": kind}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class CameraConfig:
    device: str = _opt("0", "camera index (0, 1, ...) or device path such as /dev/video0")
    width: int = _opt(1280, "requested capture width in pixels", lo=160, hi=7680)
    height: int = _opt(720, "requested capture height in pixels", lo=120, hi=4320)
    fps: int = _opt(30, "requested capture rate in frames per second", lo=1, hi=240)
    fourcc: str = _opt("MJPG", "requested pixel format (four characters, e.g. MJPG or YUYV)")


@dataclass
class ModelConfig:
    name: str = _opt("auto", "segmentation net: landscape (256x144), square (256x256), "
                     "livebg (our own, 256x144), "
                     "or auto (landscape for wide frames, square otherwise)",
                     choices=("auto", "landscape", "square", "livebg"))
    provider: str = _opt("auto", "ONNX Runtime device: auto (CUDA when it really runs), cpu, cuda",
                         choices=("auto", "cpu", "cuda"))
    threads: int = _opt(1, "intra-op threads for the net on the CPU (1 is steadiest on 2 cores)",
                        lo=1, hi=64)


@dataclass
class RefineConfig:
    mode: str = _opt("sss", "matte refinement: none (net probability upsampled), guided "
                     "(fast guided filter), sss (graph solve on superpixels + guided filter)",
                     choices=("none", "guided", "sss"))
    superpixels: str = _opt("grid", "sss nodes: grid (regular 8x8-pixel blocks at 720p) or slic "
                            "(about 1500 SLIC superpixels, warm-started frame to frame)",
                            choices=("grid", "slic"))
    semantic: bool = _opt(False, "sss: add semantic edges from the net's inner features "
                          "(asks the net for them; measured no gain on the dev photos)")


@dataclass
class TemporalConfig:
    mode: str = _opt("motion", "temporal stability: motion (hold the matte where the image is "
                     "still, follow it at once where it moves; no lag) or off (every frame "
                     "on its own)", choices=("motion", "off"))


@dataclass
class BackgroundConfig:
    mode: str = _opt("blur", "what replaces the background",
                     choices=("blur", "image", "video", "color", "transparent", "none"))
    blur: float = _opt(0.5, "blur strength for mode blur, 0 (light) to 1 (strong)", lo=0.0, hi=1.0)
    image: str = _opt("", "image or video file for modes image and video", kind="path")
    fit: str = _opt("cover", "how an image fills the frame: cover (crop) or fit (pad with color)",
                    choices=("cover", "fit"))
    color: str = _opt("#00b140", "colour for mode color and for fit padding, as #rrggbb",
                      kind="color")


@dataclass
class OutputConfig:
    sinks: list = _opt(["virtual"], "where frames go: virtual (virtual camera), overlay (a "
                       "page for OBS: the person over transparency, whatever background.mode; "
                       "see overlay.*), window, null, a video file (.mp4 .avi .mkv .mov), or a "
                       "folder for a PNG sequence written with a trailing / (frames/)")
    device: str = _opt("", "virtual camera device such as /dev/video10; empty: the first loopback device",
                       kind="path")
    overwrite: bool = _opt(False, "allow replacing existing output files")


@dataclass
class OverlayConfig:
    host: str = _opt("127.0.0.1", "address the overlay page is served on; keep loopback "
                     "unless other machines must see it")
    port: int = _opt(8765, "TCP port of the overlay page (0: any free port)", lo=0, hi=65535)
    token: str = _opt("", "secret in the overlay URL (16+ characters of A-Z a-z 0-9 _ -); "
                      "empty: a new random one at every start")
    max_fps: float = _opt(30.0, "most frames per second sent to overlay pages", lo=1.0, hi=120.0)
    quality: int = _opt(80, "JPEG quality of the overlay's colour and alpha", lo=10, hi=100)


@dataclass
class LogConfig:
    level: str = _opt("info", "log level", choices=("debug", "info", "warning", "error"))
    stats_interval: float = _opt(10.0, "seconds between per-stage timing lines (0: never)",
                                 lo=0.0, hi=3600.0)


@dataclass
class DaemonConfig:
    on_demand: bool = _opt(True, "release the camera and pause while no application has the "
                           "virtual camera open")
    reopen_max: float = _opt(5.0, "longest wait in seconds between attempts to reopen a camera "
                             "that failed (the wait doubles from 0.25 s up to this)",
                             lo=0.25, hi=600.0)
    socket: str = _opt("", "control socket path; empty: $XDG_RUNTIME_DIR/livebg/control.sock; "
                       "off: no control socket", kind="path")


@dataclass
class Config:
    input: str = _opt("camera", "camera, sample (the built-in demo clip), or a video or image file")
    subject: str = _opt("main", "who is kept: main (the person the camera is on, and anyone who "
                        "stays beside them; people passing behind fade out) or all (everyone "
                        "the net finds)", choices=("all", "main"))
    camera: CameraConfig = field(default_factory=CameraConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)
    temporal: TemporalConfig = field(default_factory=TemporalConfig)
    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    overlay: OverlayConfig = field(default_factory=OverlayConfig)
    log: LogConfig = field(default_factory=LogConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def get(self, key: str, source: str = "key") -> Any:
        """Value at a dotted key such as ``background.blur`` (``source`` starts an error)."""
        obj, name = _resolve(self, key, source)
        return getattr(obj, name)


_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


def parse_color(text: str) -> tuple[int, int, int]:
    """``#rrggbb`` -> BGR tuple of ints in 0..255 (OpenCV order)."""
    if not _COLOR.match(text):
        raise ValueError(f"{text!r} is not a colour of the form #rrggbb")
    r, g, b = (int(text[i:i + 2], 16) for i in (1, 3, 5))
    return (b, g, r)


def yaml_text(value: Any, limit: int = 60) -> str:
    """``value`` written as in YAML (``true``, ``null``, ``'text'``, ``[a, b]``), shortened."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, list):
        text = "[" + ", ".join(yaml_text(v, limit) for v in value[:20]) + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{yaml_text(k, limit)}: {yaml_text(v, limit)}"
                               for k, v in list(value.items())[:20]) + "}"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _allowed(f: dataclasses.Field) -> str:
    m = f.metadata
    if m.get("choices"):
        return "one of " + ", ".join(m["choices"])
    if m.get("kind") == "color":
        return "a colour #rrggbb"
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, (int, float)):
        noun = "a whole number" if isinstance(default, int) else "a number"
        if m.get("lo") is not None:
            return f"{noun} from {m['lo']:g} to {m['hi']:g}"
        return noun
    if isinstance(default, list):
        return "a list of strings"
    return "a string"


def _check_value(f: dataclasses.Field, value: Any, where: str) -> Any:
    """Validate one leaf value; returns it converted (e.g. int -> float)."""
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    m = f.metadata
    if value is None and not isinstance(default, (bool, list)):
        raise ConfigError(f"{where} is empty: must be {_allowed(f)} (in YAML `#` starts a "
                          "comment, so quote a value that begins with it: '#00b140')")
    bad = ConfigError(f"{where} = {yaml_text(value)}: must be {_allowed(f)}")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        value = float(value)
        if value != value:  # NaN
            raise bad
    elif isinstance(default, list):
        if isinstance(value, str) or value is None:
            value = [value]
        if isinstance(value, list):
            # YAML reads a bare `null` (the null sink) as None.
            value = ["null" if v is None else v for v in value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise bad
        value = list(value)
    elif isinstance(default, str):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and f.name == "device":
            value = str(value)  # `device: 0` in YAML is an int; a camera index is meant
        if not isinstance(value, str):
            raise bad
    if m.get("choices") and value not in m["choices"]:
        raise bad
    if m.get("lo") is not None and not (m["lo"] <= value <= m["hi"]):
        raise bad
    if m.get("kind") == "color" and not _COLOR.match(value):
        raise bad
    return value


def _fields(obj) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(obj)}


def _unknown(name: str, known, where: str) -> ConfigError:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"{where}: unknown key {name!r}{hint}; allowed: {', '.join(known)}")


def _merge(obj, data: Any, source: str, prefix: str = "") -> None:
    """Validate ``data`` (a mapping from YAML) and write it into ``obj``."""
    where = f"{source}: {prefix.rstrip('.')}" if prefix else source
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys to values, got {type(data).__name__}")
    known = _fields(obj)
    for name, value in data.items():
        if name not in known:
            raise _unknown(str(name), known, where)
        f = known[name]
        current = getattr(obj, name)
        if dataclasses.is_dataclass(current):
            _merge(current, value, source, prefix + name + ".")
        else:
            setattr(obj, name, _check_value(f, value, f"{source}: {prefix}{name}"))


def _resolve(cfg: Config, key: str, source: str):
    """(object, leaf name) for a dotted key, or ConfigError."""
    parts = key.split(".")
    obj = cfg
    for i, part in enumerate(parts):
        known = _fields(obj)
        if part not in known:
            raise _unknown(part, known, f"{source}: {'.'.join(parts[:i]) or 'top level'}")
        if i < len(parts) - 1:
            obj = getattr(obj, part)
            if not dataclasses.is_dataclass(obj):
                raise ConfigError(f"{source}: {'.'.join(parts[:i + 1])} has no sub-keys")
    if dataclasses.is_dataclass(getattr(obj, parts[-1])):
        raise ConfigError(f"{source}: {key} is a section; set one of its keys, e.g. {key}.{next(iter(_fields(getattr(obj, parts[-1]))))}")
    return obj, parts[-1]


def set_value(cfg: Config, key: str, value: Any, source: str = "command line") -> Config:
    """A validated copy of ``cfg`` with the dotted ``key`` set to ``value``.

    A string value is parsed as YAML first (so ``"0.7"`` is a number and
    ``"[virtual, window]"`` a list), except for string-typed keys.
    """
    return set_values(cfg, {key: value}, source)


def set_values(cfg: Config, values: dict[str, Any], source: str = "command line") -> Config:
    """A copy of ``cfg`` with several dotted keys set, each checked, then checked together.

    Keys that only make sense together (``background.mode: image`` and
    ``background.image``) can be given in any order.
    """
    new = copy.deepcopy(cfg)
    for key, value in values.items():
        _set_leaf(new, key, value, source)
    validate(new, source)
    return new


def _set_leaf(new: Config, key: str, value: Any, source: str) -> None:
    obj, name = _resolve(new, key, source)
    f = _fields(obj)[name]
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    if isinstance(value, str) and not isinstance(default, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            pass
    setattr(obj, name, _check_value(f, value, f"{source}: {key}"))


def validate(cfg: Config, source: str) -> None:
    """Checks that span several keys (raised as one-line ConfigError)."""
    token = cfg.overlay.token
    if token and not re.fullmatch(r"[A-Za-z0-9_-]{16,}", token):
        raise ConfigError(f"{source}: overlay.token: must be 16 or more characters of "
                          "A-Z a-z 0-9 _ -, or empty for a random one")
    for spec in cfg.output.sinks:
        try:
            sink_kind(str(spec))
        except SinkNameError as e:
            raise ConfigError(f"{source}: output.sinks: {e}") from None
    bg = cfg.background
    if bg.mode in ("image", "video"):
        if not bg.image:
            raise ConfigError(f"{source}: background.image is empty: background.mode {bg.mode} "
                              "needs the path of a file")
        if not Path(bg.image).expanduser().is_file():
            raise ConfigError(f"{source}: background.image = {bg.image!r}: no such file")


def config_home() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "livebg"


def user_config_path() -> Path:
    """``$XDG_CONFIG_HOME/livebg/config.yaml`` (``~/.config`` when unset)."""
    return config_home() / "config.yaml"


def runtime_dir() -> Path:
    """``$XDG_RUNTIME_DIR/livebg``; unset: ``/run/user/UID/livebg`` if that folder exists, else
    ``/tmp/livebg-UID``.

    Only the name: :func:`livebg.system.safepaths.private_dir` creates it (0700)
    or refuses it (not ours, open to others, a symlink) before anything uses it,
    as tmux does for ``/tmp/tmux-UID``, so a predictable name cannot be hijacked.
    """
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base:
        return Path(base) / "livebg"
    uid = os.getuid()
    if os.path.isdir(f"/run/user/{uid}"):
        return Path(f"/run/user/{uid}/livebg")
    return Path(f"/tmp/livebg-{uid}")


class _Refused(yaml.MarkedYAMLError):
    """YAML that parses but that no configuration is: a key twice, deep nesting, huge numbers."""


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys, nesting deeper than
    ``MAX_DEPTH`` and numbers longer than ``MAX_NUMBER_CHARS`` (one line each)."""

    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(problem=f"nested more than {MAX_DEPTH} levels deep",
                               problem_mark=self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen: set = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = key_node.value
            if key in seen:
                raise _Refused(problem=f"key {key!r} is given twice (keep one)",
                               problem_mark=key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)

    def _number(self, node, construct):
        if len(node.value) > MAX_NUMBER_CHARS:
            raise _Refused(problem=f"a number of {len(node.value)} characters is too long "
                           "for any option", problem_mark=node.start_mark)
        return construct(self, node)


_Loader.add_constructor("tag:yaml.org,2002:int",
                        lambda ld, n: ld._number(n, yaml.SafeLoader.construct_yaml_int))
_Loader.add_constructor("tag:yaml.org,2002:float",
                        lambda ld, n: ld._number(n, yaml.SafeLoader.construct_yaml_float))


def read_config_text(path: Path) -> str:
    """The text of the configuration file at ``path``, checked before it is parsed.

    Refuses, each as one ConfigError line: a missing file, a dangling symlink,
    a symlink loop, a folder, anything but a regular file (a device such as
    /dev/zero, a FIFO: opened without blocking), a file over
    ``MAX_CONFIG_BYTES``, and bytes that are not UTF-8 (naming the line).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as e:
        if e.errno == errno.ELOOP:
            why = "a symlink loop"
        elif e.errno == errno.ENOENT and os.path.islink(path):
            why = f"a symlink to {os.readlink(path)}, which does not exist"
        else:
            why = e.strerror
        raise ConfigError(f"{path}: cannot read the configuration ({why})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ConfigError(f"{path} is a folder, not a configuration file")
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{path} is not a regular file (a device or a pipe?): "
                              "point livebg at a YAML file")
        if st.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path} is {st.st_size / 2**20:.1f} MB; a configuration file is "
                              f"at most {MAX_CONFIG_BYTES // 2**20} MB: is it the right file?")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the configuration ({e.strerror})") from None
    finally:
        os.close(fd)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path} is over {MAX_CONFIG_BYTES // 2**20} MB: is it the right file?")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise ConfigError(f"{path}: line {line}: byte 0x{data[e.start]:02x} is not UTF-8 text: "
                          "save the file as UTF-8") from None


def parse_yaml(text: str, source: str) -> Any:
    """YAML ``text`` -> Python data through :class:`_Loader`; every problem is one ConfigError."""
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except _Refused as e:
        raise ConfigError(f"{source}: line {e.problem_mark.line + 1}: {e.problem}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or "syntax error"
        raise ConfigError(f"{source}: not valid YAML{line}: {problem}") from None
    except (RecursionError, ValueError, OverflowError, MemoryError) as e:
        raise ConfigError(f"{source}: not a usable configuration ({type(e).__name__})") from None


def load_file(path: Path, base: Config | None = None, *, empty_ok: bool = True) -> Config:
    """``base`` (defaults when None) overlaid with the YAML file at ``path``.

    Args:
        empty_ok: an empty file (no bytes, or only white space) means the
            defaults; False makes it an error (a reload: an editor that is
            saving leaves the file empty for a moment). A file of comments
            only always means the defaults.

    Raises:
        ConfigError: unreadable or unusable file (see :func:`read_config_text`),
            YAML syntax error, duplicate key, unknown key, bad value.
    """
    cfg = copy.deepcopy(base) if base is not None else Config()
    text = read_config_text(Path(path))
    if not text.strip() and not empty_ok:
        raise ConfigError(f"{path} is empty (being saved?); write a comment in it to mean "
                          "the defaults")
    data = parse_yaml(text, str(path))
    if data is None:
        return cfg
    _merge(cfg, data, str(path))
    validate(cfg, str(path))
    return cfg


def load(path: Path | None = None, overrides: dict[str, Any] | None = None, *,
         empty_ok: bool = True) -> Config:
    """Defaults, then ``path`` (or the user's file when it exists), then overrides.

    The overrides are set together (:func:`set_values`), so keys that depend
    on each other (``background.mode`` and ``background.image``) hold. An
    explicit ``path`` that does not exist is an error; a missing user file is
    not (the defaults apply), but one that is there and unusable (a folder, a
    dangling symlink) is. ``empty_ok``: see :func:`load_file`.
    """
    cfg = Config()
    if path is not None:
        if not os.path.lexists(path):
            raise ConfigError(f"{path}: no such configuration file")
        cfg = load_file(Path(path), cfg, empty_ok=empty_ok)
    elif os.path.lexists(user_config_path()):
        cfg = load_file(user_config_path(), cfg, empty_ok=empty_ok)
    return set_values(cfg, overrides or {})


def describe() -> list[tuple[str, Any, str]]:
    """(dotted key, default, help) for every option, for docs and ``--help``."""
    rows = []

    def walk(obj, prefix):
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, prefix + f.name + ".")
            else:
                rows.append((prefix + f.name, value, f.metadata["help"] + f"; {_allowed(f)}"))

    walk(Config(), "")
    return rows
