"""The running daemon's local control socket: server and client.

A Unix stream socket, by default ``$XDG_RUNTIME_DIR/livebg/control.sock``
(mode 0600 in a 0700 folder: only the user can talk to it; never a network
port). The protocol is newline-delimited JSON, one request per line, one
reply per line, in order, on a connection that may stay open::

    -> {"cmd": "status"}
    <- {"ok": true, "fps": 30.0, ...}
    -> {"cmd": "set", "key": "background.blur", "value": 0.8}
    <- {"ok": true, "key": "background.blur", "value": 0.8, "persisted": false, ...}
    -> {"cmd": "nonsense"}
    <- {"ok": false, "error": "unknown command 'nonsense'; use one of ..."}

A request may carry an ``"id"``; the reply repeats it. A line longer than
:data:`MAX_LINE` bytes, invalid JSON, or a request that is not an object gets
an ``{"ok": false, "error": ...}`` reply; the connection and the daemon go on.
Strict both ways: NaN and Infinity, numbers of more than :data:`MAX_DIGITS`
digits or out of range, nesting deeper than :data:`MAX_DEPTH` and NUL
characters are refused, and every reply is RFC 8259 JSON.

Bounded: at most :data:`MAX_CLIENTS` connections, :data:`MAX_PER_PROCESS` from
one process; when full the longest-idle one is closed (with a last error
line) to make room, and a connection without a complete request for
:data:`IDLE_TIMEOUT` s is closed. Only this user or root may connect.

Commands (:func:`dispatch`):

``status``
    state (running, paused, idle, starting, unavailable, ended), paused,
    paused_by (user, on-demand, null), fps, frames, captured, dropped,
    errors, stages_ms {stage: {p50, p95}}, latency_ms {p50, p95} (capture to
    output), input, camera {describe, device, fourcc, width, height, fps,
    problem}, output {width, height, fps}, model, provider, refine,
    background, sinks [describe()...], consumers [name (pid N)...] or null,
    on_demand, config, pid, uptime_s.
``get`` {"key": "background.blur"}
    {"key", "value"}; a section name gives a mapping; no key: everything.
``set`` {"key": ..., "value": ...}
    validated like the file (a string is parsed as YAML for non-string
    keys) and applied at once like a reload; in memory only, never written
    to the file (``"persisted": false``), and replaced by the file on the
    next reload. Reply: {"changed": [sections], "key", "value", "persisted",
    "note", "notes"?}.
``pause`` / ``resume``
    release the camera and show a "paused" frame / carry on.
``snapshot`` {"path": "/abs/file.png"}? {"format": "png" | "jpeg"}? {"overwrite": false}?
    the latest output as PNG or JPEG (by the path's suffix, .png .jpg .jpeg):
    written by the daemon to ``path`` when given ({"path", "format", "width",
    "height"}; never over an existing file unless ``overwrite``, never through
    a link, FIFO or device; a temporary file then a link or rename), else
    inline ({"format", "width", "height", "data": base64}).
``reload``
    re-read the configuration file: {"changed": [...], "notes"?}, or an
    error naming the file, key and allowed values (the old one stays).

One daemon per socket: a lock file next to the socket (opened with
``O_NOFOLLOW``) is held while the daemon runs, so a second one stops with one
clear line, and a socket file left by a daemon that died is replaced. Paths
are checked by :mod:`livebg.system.safepaths`: a ``daemon.socket`` naming
anything but a socket, or a folder that is a link, another user's or open to
others, is refused with one line; nothing is deleted or chmod-ed.
"""

from __future__ import annotations

import base64
import errno
import fcntl
import json
import logging
import math
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from livebg.system.safepaths import (
    UnsafePath,
    check_new_file,
    check_shared_dir,
    check_socket_path,
    open_lock,
    private_dir,
    write_new_file,
)

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024
MAX_CLIENTS = 16      # connections served at once (one thread each)
MAX_PER_PROCESS = 4   # of those, from one client process (SO_PEERCRED pid)
IDLE_TIMEOUT = 60.0   # seconds a connection may go without a complete request
MAX_DEPTH = 16        # nesting of arrays and objects in a request (ours use 3)
MAX_DIGITS = 32       # digits of an integer in a request (a 4,300-digit one took 1 ms to refuse)
COMMANDS = ("status", "get", "set", "pause", "resume", "snapshot", "reload")
SNAPSHOT_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class AlreadyRunning(RuntimeError):
    """Another daemon holds the control socket."""


class ControlError(RuntimeError):
    """The client cannot reach the daemon, or the daemon's reply is unusable."""


def default_path() -> Path:
    from livebg.config import runtime_dir

    return runtime_dir() / "control.sock"


def socket_path(setting: str = "") -> Path | None:
    """The socket for a ``daemon.socket`` setting: empty = default, ``off`` = None."""
    if setting == "off":
        return None
    return Path(setting).expanduser() if setting else default_path()


def _peer(conn: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process at the other end of a Unix socket."""
    pid, uid, _ = _PEERCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                   _PEERCRED.size))
    return pid, uid


@dataclass
class _Peer:
    conn: socket.socket
    pid: int
    last: float          # time.monotonic() of its last complete request (or of connecting)
    busy: bool = False   # a request of it is being answered


class ControlServer:
    """Serves ``handler(request: dict) -> reply dict`` on a Unix socket.

    One thread accepts; each client gets a thread. Bounded like sshd's
    MaxStartups: at most :data:`MAX_CLIENTS` connections, :data:`MAX_PER_PROCESS`
    of them from one process; when full, the connection idle the longest is
    closed to make room (so the user's own ``ctl`` always gets through), and a
    connection without a complete request for ``idle_timeout`` seconds is
    closed. Only this user (or root) may connect (``SO_PEERCRED``). Every
    message gets a strict-JSON reply (no NaN); a bad one gets ``ok: false``.
    The handler is called from the client threads and must be thread-safe; an
    exception it raises becomes an error reply.

    Raises (from :meth:`start`):
        AlreadyRunning: a live daemon already serves ``path``.
        UnsafePath: the folder, socket or lock path is unsafe or unusable
            (the message says what to do); nothing is deleted or chmod-ed.
    """

    def __init__(self, path: Path, handler: Callable[[dict], dict], *,
                 idle_timeout: float = IDLE_TIMEOUT):
        self.path = Path(path)
        self.handler = handler
        self.idle_timeout = idle_timeout
        self._sock: socket.socket | None = None
        self._lock_fd: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._peers: dict[socket.socket, _Peer] = {}
        self._peers_lock = threading.Lock()
        self._logged: set[str] = set()  # handler failures already logged with a traceback

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def _prepare_folder(self) -> None:
        from livebg.config import runtime_dir

        folder = self.path.parent
        if folder == runtime_dir() or not folder.exists():
            private_dir(folder)  # ours: created 0700, or checked
        else:
            check_shared_dir(folder)  # the user's own folder: checked, never chmod-ed

    def start(self) -> None:
        check_socket_path(self.path)  # length, NUL, "not a socket" before touching anything
        self._prepare_folder()
        fd = open_lock(self.lock_path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                pid = os.read(fd, 32).decode(errors="replace").strip() or "?"
            except OSError:
                pid = "?"
            os.close(fd)
            raise AlreadyRunning(f"livebg is already running (pid {pid}, control socket "
                                 f"{self.path}): use `livebg ctl status`, or stop it first "
                                 "(`systemctl --user stop livebg`)") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        try:
            self._sock = self._bind()
        except BaseException:
            self._release_lock()
            raise
        self._thread = threading.Thread(target=self._accept_loop, name="livebg-control",
                                        daemon=True)
        self._thread.start()
        log.info("control socket: %s", self.path)

    def _bind(self) -> socket.socket:
        if check_socket_path(self.path):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            probe.settimeout(0.5)
            try:
                probe.connect(str(self.path))
            except OSError:
                log.debug("replacing stale control socket %s", self.path)
                self.path.unlink()
            else:
                raise AlreadyRunning(f"livebg is already running (control socket {self.path}"
                                     " answers): use `livebg ctl status`")
            finally:
                probe.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # The socket is born 0600 (umask), not chmod-ed after bind: no window.
            old = os.umask(0o177)
            try:
                sock.bind(str(self.path))
            finally:
                os.umask(old)
            sock.listen(64)
            sock.settimeout(0.2)
        except OSError as e:
            sock.close()
            raise UnsafePath(f"{self.path}: cannot create the control socket ({e.strerror})") \
                from None
        return sock

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            try:
                os.unlink(self.lock_path)
            except OSError:
                pass
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- clients -----------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                time.sleep(0.05)  # EMFILE and the like: do not spin
                continue
            conn.settimeout(0.5)
            try:
                pid, uid = _peer(conn)
            except OSError:
                conn.close()
                continue
            if uid not in (os.getuid(), 0):
                self._log_once(f"uid {uid}", "control: refused a connection from uid %d", uid)
                conn.close()
                continue
            self._admit(conn, pid)

    def _admit(self, conn: socket.socket, pid: int) -> None:
        with self._peers_lock:
            mine = [p for p in self._peers.values() if p.pid == pid]
            if len(mine) >= MAX_PER_PROCESS:
                pool, why = mine, f"at most {MAX_PER_PROCESS} connections per process"
            elif len(self._peers) >= MAX_CLIENTS:
                pool, why = list(self._peers.values()), f"at most {MAX_CLIENTS} connections"
            else:
                pool, why = [], ""
            victim = min((p for p in pool if not p.busy), key=lambda p: p.last, default=None)
            if pool and victim is None:
                full = True
            else:
                full = False
                if victim is not None:
                    del self._peers[victim.conn]
                self._peers[conn] = peer = _Peer(conn, pid, time.monotonic())
        if full:
            _send(conn, {"ok": False, "error": f"too many busy connections ({why}); try again"},
                  wait=False)
            conn.close()
            return
        if victim is not None:
            _send(victim.conn, {"ok": False, "error": f"connection closed to make room ({why};"
                                                      " this one was idle longest)"}, wait=False)
            _hang_up(victim.conn)
        threading.Thread(target=self._serve, args=(peer,), name="livebg-control-client",
                         daemon=True).start()

    def _serve(self, peer: _Peer) -> None:
        conn = peer.conn
        buf = b""
        discarding = False  # inside an oversized line: drop bytes up to its newline
        try:
            while not self._stop.is_set():
                if time.monotonic() - peer.last > self.idle_timeout:
                    _send(conn, {"ok": False, "error": f"connection closed: no request for "
                                                      f"{self.idle_timeout:g} s"})
                    return
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    return
                buf += data
                while True:
                    nl = buf.find(b"\n")
                    if nl < 0:
                        if len(buf) > MAX_LINE and not discarding:
                            discarding = True
                            _send(conn, _too_long())
                        if discarding:
                            buf = b""
                        break
                    line, buf = buf[:nl], buf[nl + 1:]
                    if discarding:
                        discarding = False
                        peer.last = time.monotonic()
                        continue
                    if len(line) > MAX_LINE:
                        _send(conn, _too_long())
                    elif line.strip():
                        peer.busy = True
                        try:
                            _send(conn, self._answer(line))
                        finally:
                            peer.busy = False
                    peer.last = time.monotonic()
        except OSError:
            return
        finally:
            with self._peers_lock:
                if self._peers.get(conn) is peer:
                    del self._peers[conn]
            conn.close()

    def _answer(self, line: bytes) -> dict:
        request, refusal = parse_request(line)
        if refusal is not None:
            return refusal
        try:
            reply = self.handler(request)
        except Exception as e:  # noqa: BLE001 - one bad request never stops the daemon
            what = f"{request.get('cmd')!r}: {type(e).__name__}"
            self._log_once(what, "control request %s failed", what, exc_info=True)
            reply = {"ok": False, "error": f"internal error: {e}"}
        if "id" in request:
            reply = {**reply, "id": request["id"]}
        return reply

    def _log_once(self, key: str, msg: str, *args, exc_info: bool = False) -> None:
        """At WARNING (with the traceback) the first time for ``key``, then at DEBUG."""
        first = key not in self._logged
        if first and len(self._logged) < 100:
            self._logged.add(key)
        log.log(logging.WARNING if first else logging.DEBUG, msg, *args,
                exc_info=exc_info and first)

    @property
    def clients(self) -> int:
        """Connections open now."""
        return len(self._peers)

    def close(self) -> None:
        self._stop.set()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        with self._peers_lock:
            for c in list(self._peers):
                _hang_up(c)
        try:
            if check_socket_path(self.path):
                self.path.unlink()
        except (OSError, UnsafePath):
            pass
        self._release_lock()


class _BadRequest(ValueError):
    pass


def _no_constant(name: str):
    raise _BadRequest(f"{name} is not a JSON number")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise _BadRequest(f"a number of more than {MAX_DIGITS} digits ({text[:12]}...)")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BadRequest(f"the number {text[:12]}{'...' if len(text) > 12 else ''} is out of "
                          "range")
    return value


def _check_tree(obj: Any) -> None:
    """No nesting deeper than MAX_DEPTH and no NUL in any text (iterative: no recursion)."""
    stack = [(obj, 1)]
    while stack:
        o, depth = stack.pop()
        if isinstance(o, str):
            if "\x00" in o:
                raise _BadRequest("text must not contain NUL characters")
            continue
        if not isinstance(o, (dict, list)):
            continue
        if depth > MAX_DEPTH:
            raise _BadRequest(f"nested deeper than {MAX_DEPTH} levels")
        items = o.items() if isinstance(o, dict) else ((None, v) for v in o)
        for k, v in items:
            if k is not None:
                stack.append((k, depth + 1))
            stack.append((v, depth + 1))


def parse_request(line: bytes) -> tuple[dict, dict | None]:
    """(request, None) for one line, or ({}, an ``{"ok": false, "error": ...}`` reply).

    Strict: UTF-8 JSON, an object, no NaN or Infinity, finite numbers of at
    most :data:`MAX_DIGITS` digits, at most :data:`MAX_DEPTH` levels, no NUL.
    """
    try:
        text = line.decode("utf-8")
        request = json.loads(text, parse_constant=_no_constant, parse_int=_bounded_int,
                             parse_float=_finite_float)
        _check_tree(request)
    except UnicodeDecodeError:
        why = "not valid JSON: the line is not UTF-8 text"
    except _BadRequest as e:
        why = f"refused: {e}"
    except RecursionError:
        why = f"refused: nested deeper than {MAX_DEPTH} levels"
    except ValueError as e:  # json.JSONDecodeError and int()'s digit limit
        why = f"not valid JSON: {e}"
    else:
        if isinstance(request, dict):
            return request, None
        why = 'a request must be a JSON object such as {"cmd": "status"}'
    return {}, {"ok": False, "error": why}


def _too_long() -> dict:
    return {"ok": False, "error": f"message too long (more than {MAX_LINE} bytes); ignored"}


def _strict(obj: Any) -> Any:
    """``obj`` with non-finite floats as null and other non-JSON values as text."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    return str(obj)


def encode_reply(reply: dict) -> bytes:
    """One line of strict JSON (RFC 8259: no NaN or Infinity) for ``reply``."""
    try:
        text = json.dumps(reply, separators=(",", ":"), allow_nan=False)
    except (ValueError, TypeError):
        text = json.dumps(_strict(reply), separators=(",", ":"), allow_nan=False)
    return text.encode() + b"\n"


def _send(conn: socket.socket, reply: dict, *, wait: bool = True) -> None:
    """Send one reply; ``wait=False``: only what fits in the buffer now (a last word)."""
    try:
        if wait:
            conn.sendall(encode_reply(reply))
        else:
            conn.send(encode_reply(reply), socket.MSG_DONTWAIT)
    except OSError:
        pass


def _hang_up(conn: socket.socket) -> None:
    """Wake the connection's thread (its recv returns) so that it closes the socket."""
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class Client:
    """A connection to the daemon: ``Client().request({"cmd": "status"})``.

    Raises:
        ControlError: no daemon listens, or it does not answer in ``timeout`` s.
    """

    def __init__(self, path: Path | None = None, *, timeout: float = 10.0):
        self.path = Path(path) if path else default_path()
        try:
            owner = os.lstat(self.path).st_uid
        except (OSError, ValueError):
            owner = os.getuid()  # absent: connect() says so below
        if owner != os.getuid():
            raise ControlError(f"{self.path} belongs to uid {owner}, not to you: not talking "
                               "to it (set XDG_RUNTIME_DIR, or --socket)")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._connect(timeout)
            _, uid = _peer(self._sock)
        except (OSError, ValueError) as e:
            self._sock.close()
            if getattr(e, "errno", None) in (errno.ENOENT, errno.ECONNREFUSED):
                raise ControlError(f"livebg is not running (no daemon at {self.path}); start it "
                                   "with `livebg run` or `systemctl --user start livebg`") from None
            raise ControlError(f"{self.path}: cannot connect "
                               f"({getattr(e, 'strerror', None) or e})") from None
        if uid not in (os.getuid(), 0):
            self._sock.close()
            raise ControlError(f"{self.path} is served by uid {uid}, not by you: not talking to it")
        self._buf = b""

    def _connect(self, timeout: float) -> None:
        # A Unix socket with a timeout fails at once (EAGAIN) while the daemon's
        # backlog is full rather than waiting: wait for room, up to ``timeout``.
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._sock.connect(str(self.path))
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def request(self, request: dict) -> dict:
        try:
            data = json.dumps(request, allow_nan=False).encode() + b"\n"
        except (ValueError, TypeError) as e:
            raise ControlError(f"cannot send this request as JSON: {e}") from None
        try:
            self._sock.sendall(data)
            while b"\n" not in self._buf:
                data = self._sock.recv(1 << 20)
                if not data:
                    raise ControlError("the daemon closed the connection")
                self._buf += data
        except TimeoutError:
            raise ControlError(f"no reply from the daemon at {self.path}") from None
        except OSError as e:
            raise ControlError(f"{self.path}: {e.strerror or e}") from None
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            reply = json.loads(line)
        except json.JSONDecodeError as e:
            raise ControlError(f"unreadable reply from the daemon: {e}") from None
        if not isinstance(reply, dict):
            raise ControlError("unreadable reply from the daemon: not an object")
        return reply

    def close(self) -> None:
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def request(req: dict, path: Path | None = None, *, timeout: float = 10.0) -> dict:
    """One request on a fresh connection; the daemon's reply."""
    with Client(path, timeout=timeout) as c:
        return c.request(req)


def snapshot_format(name: str | os.PathLike) -> str:
    """"png" or "jpeg" for a file name by its suffix; :class:`UnsafePath` for any other."""
    fmt = SNAPSHOT_FORMATS.get(Path(name).suffix.lower())
    if fmt is None:
        raise UnsafePath(f"{os.fspath(name)}: a snapshot is written as PNG (.png) or JPEG "
                         "(.jpg, .jpeg); name the file with one of these suffixes")
    return fmt


def encode_snapshot(image, fmt: str) -> bytes:
    """``image`` (BGR or BGRA uint8) as PNG or JPEG bytes (JPEG: alpha over black)."""
    import cv2

    from livebg.sinks.base import to_bgr

    if fmt == "jpeg":
        ok, buf = cv2.imencode(".jpg", to_bgr(image), [cv2.IMWRITE_JPEG_QUALITY, 92])
    else:
        ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"{fmt.upper()} encoding failed")
    return buf.tobytes()


def _snapshot(daemon, req: dict) -> dict:
    path, fmt, overwrite = req.get("path"), req.get("format"), req.get("overwrite", False)
    if fmt not in (None, "png", "jpeg") or not isinstance(overwrite, bool):
        return {"ok": False, "error": 'snapshot: "format" is "png" or "jpeg", "overwrite" true '
                                      "or false"}
    try:
        if path is not None:
            if not isinstance(path, str) or not os.path.isabs(path):
                return {"ok": False, "error": "snapshot: path must be an absolute file path"}
            by_name = snapshot_format(path)
            if fmt not in (None, by_name):
                return {"ok": False, "error": f"snapshot: {path} names a {by_name.upper()} "
                                              f"file, not {fmt.upper()}"}
            fmt = by_name
            check_new_file(Path(path), overwrite=overwrite)
        image = daemon.last_output
        if image is None:
            return {"ok": False, "error": "snapshot: no output frame yet; try again in a moment"}
        data = encode_snapshot(image, fmt or "png")
        h, w = image.shape[:2]
        if path is None:
            return {"ok": True, "format": fmt or "png", "width": w, "height": h,
                    "data": base64.b64encode(data).decode("ascii")}
        write_new_file(Path(path), data, overwrite=overwrite)
    except UnsafePath as e:
        return {"ok": False, "error": f"snapshot: {e}"}
    return {"ok": True, "path": path, "format": fmt, "width": w, "height": h}


def _get(daemon, req: dict) -> dict:
    from livebg.config import ConfigError

    key = req.get("key")
    if key in (None, ""):
        return {"ok": True, "key": None, "value": daemon.cfg.to_dict()}
    if not isinstance(key, str):
        return {"ok": False, "error": "key must be a string such as background.blur"}
    value: Any = daemon.cfg.to_dict()
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            try:
                daemon.cfg.get(key, source="control")  # for its one-line error
            except ConfigError as e:
                return {"ok": False, "error": str(e)}
            return {"ok": False, "error": f"control: unknown key {key!r}"}
        value = value[part]
    return {"ok": True, "key": key, "value": value}


def _set(daemon, req: dict) -> dict:
    from livebg import config as config_mod
    from livebg.config import ConfigError

    key = req.get("key")
    if not isinstance(key, str) or "value" not in req:
        return {"ok": False, "error": 'set needs "key" (e.g. "background.blur") and "value"'}
    try:
        # Read, modify and apply under the daemon's lock: two clients' sets never undo
        # each other, nor a reload in between.
        reply, new = daemon.update(
            lambda cfg: config_mod.set_value(cfg, key, req["value"], source="control"))
    except ConfigError as e:
        return {"ok": False, "error": str(e)}
    if reply.get("ok"):
        reply.update(key=key, value=new.get(key), persisted=False,
                     note="applied in memory only, until the next reload; edit the "
                          "configuration file to keep it")
    return reply


def _status(daemon) -> dict:
    reply = daemon.status()
    # Sinks describe themselves with secrets masked (for the log); the socket is
    # private (0600), so its status shows the overlay's full address.
    reply["sinks"] = [getattr(s, "private_describe", s.describe)() for s in daemon.sinks]
    return reply


def dispatch(daemon, req: dict) -> dict:
    """Answer one request for ``daemon`` (a :class:`livebg.engine.daemon.Daemon`)."""
    cmd = req.get("cmd")
    if cmd == "status":
        return _status(daemon)
    if cmd == "get":
        return _get(daemon, req)
    if cmd == "set":
        return _set(daemon, req)
    if cmd == "pause":
        daemon.pause()
        return {"ok": True, "paused": True}
    if cmd == "resume":
        daemon.resume()
        state = daemon.state()
        return {"ok": True, "paused": state in ("paused", "idle"), "state": state}
    if cmd == "reload":
        return daemon.reload()
    if cmd == "snapshot":
        return _snapshot(daemon, req)
    return {"ok": False, "error": f"unknown command {cmd!r}; use one of "
                                  f"{', '.join(COMMANDS)}"}
