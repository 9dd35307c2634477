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
``snapshot`` {"path": "/abs/file.png"}?
    the latest output as PNG: written by the daemon to ``path`` when given
    ({"path", "width", "height"}), else inline ({"format": "png", "width",
    "height", "data": base64}).
``reload``
    re-read the configuration file: {"changed": [...], "notes"?}, or an
    error naming the file, key and allowed values (the old one stays).

One daemon per socket: a lock file next to the socket is held while the
daemon runs, so a second one stops with one clear line, and a socket file
left by a daemon that died is replaced.
"""

from __future__ import annotations

import base64
import errno
import fcntl
import json
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024
MAX_CLIENTS = 16
COMMANDS = ("status", "get", "set", "pause", "resume", "snapshot", "reload")


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


def _make_private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        if path.stat().st_uid == os.getuid():
            os.chmod(path, 0o700)
    except OSError:
        pass


class ControlServer:
    """Serves ``handler(request: dict) -> reply dict`` on a Unix socket.

    One thread accepts; each client gets a thread (at most :data:`MAX_CLIENTS`).
    The handler is called from those threads and must be thread-safe; an
    exception it raises becomes an error reply.

    Raises (from :meth:`start`):
        AlreadyRunning: a live daemon already serves ``path``.
        OSError: the folder or socket cannot be created.
    """

    def __init__(self, path: Path, handler: Callable[[dict], dict]):
        self.path = Path(path)
        self.handler = handler
        self._sock: socket.socket | None = None
        self._lock_fd: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._clients: set[socket.socket] = set()
        self._clients_lock = threading.Lock()

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def start(self) -> None:
        _make_private_dir(self.path.parent)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                pid = os.read(fd, 32).decode().strip() or "?"
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
            if self.path.exists() or self.path.is_symlink():
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
            sock.bind(str(self.path))
            os.chmod(self.path, 0o600)
            sock.listen(8)
            sock.settimeout(0.2)
        except BaseException:
            self._release_lock()
            raise
        self._sock = sock
        self._thread = threading.Thread(target=self._accept_loop, name="livebg-control",
                                        daemon=True)
        self._thread.start()
        log.info("control socket: %s", self.path)

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            try:
                os.unlink(self.lock_path)
            except OSError:
                pass
            os.close(self._lock_fd)
            self._lock_fd = None

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            with self._clients_lock:
                full = len(self._clients) >= MAX_CLIENTS
                if not full:
                    self._clients.add(conn)
            if full:
                _send(conn, {"ok": False, "error": f"too many clients (at most {MAX_CLIENTS})"})
                conn.close()
                continue
            threading.Thread(target=self._serve, args=(conn,), name="livebg-control-client",
                             daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.5)
        buf = b""
        discarding = False  # inside an oversized line: drop bytes up to its newline
        try:
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    return
                buf += data
                while True:
                    nl = buf.find(b"\n")
                    if nl < 0:
                        if len(buf) > MAX_LINE and not discarding:
                            discarding = True
                            _send(conn, {"ok": False, "error": f"message too long (more than "
                                                              f"{MAX_LINE} bytes); ignored"})
                        if discarding:
                            buf = b""
                        break
                    line, buf = buf[:nl], buf[nl + 1:]
                    if discarding:
                        discarding = False
                        continue
                    if len(line) > MAX_LINE:
                        _send(conn, {"ok": False, "error": f"message too long (more than "
                                                          f"{MAX_LINE} bytes); ignored"})
                        continue
                    if line.strip():
                        _send(conn, self._answer(line))
        except OSError:
            return
        finally:
            with self._clients_lock:
                self._clients.discard(conn)
            conn.close()

    def _answer(self, line: bytes) -> dict:
        try:
            request = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            return {"ok": False, "error": f"not valid JSON: {e}"}
        if not isinstance(request, dict):
            return {"ok": False, "error": "a request must be a JSON object such as "
                                          '{"cmd": "status"}'}
        try:
            reply = self.handler(request)
        except Exception as e:  # noqa: BLE001 - one bad request never stops the daemon
            log.exception("control request %r failed", request.get("cmd"))
            reply = {"ok": False, "error": f"internal error: {e}"}
        if "id" in request:
            reply = {**reply, "id": request["id"]}
        return reply

    def close(self) -> None:
        self._stop.set()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        with self._clients_lock:
            for c in list(self._clients):
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        try:
            self.path.unlink()
        except OSError:
            pass
        self._release_lock()


def _send(conn: socket.socket, reply: dict) -> None:
    try:
        conn.sendall(json.dumps(reply, separators=(",", ":")).encode() + b"\n")
    except OSError:
        pass


class Client:
    """A connection to the daemon: ``Client().request({"cmd": "status"})``.

    Raises:
        ControlError: no daemon listens, or it does not answer in ``timeout`` s.
    """

    def __init__(self, path: Path | None = None, *, timeout: float = 10.0):
        self.path = Path(path) if path else default_path()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(str(self.path))
        except OSError as e:
            self._sock.close()
            if e.errno in (errno.ENOENT, errno.ECONNREFUSED):
                raise ControlError(f"livebg is not running (no daemon at {self.path}); start it "
                                   "with `livebg run` or `systemctl --user start livebg`") from None
            raise ControlError(f"{self.path}: cannot connect ({e.strerror})") from None
        self._buf = b""

    def request(self, request: dict) -> dict:
        try:
            self._sock.sendall(json.dumps(request).encode() + b"\n")
            while b"\n" not in self._buf:
                data = self._sock.recv(1 << 20)
                if not data:
                    raise ControlError("the daemon closed the connection")
                self._buf += data
        except socket.timeout:
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


def dispatch(daemon, req: dict) -> dict:
    """Answer one request for ``daemon`` (a :class:`livebg.engine.daemon.Daemon`)."""
    from livebg import config as config_mod
    from livebg.config import ConfigError

    cmd = req.get("cmd")
    if cmd == "status":
        return daemon.status()
    if cmd == "get":
        key = req.get("key")
        if key in (None, ""):
            return {"ok": True, "key": None, "value": daemon.cfg.to_dict()}
        if not isinstance(key, str):
            return {"ok": False, "error": "key must be a string such as background.blur"}
        value: Any = daemon.cfg.to_dict()
        for part in key.split("."):
            if not isinstance(value, dict) or part not in value:
                try:
                    daemon.cfg.get(key)  # for its one-line error naming what is allowed
                except ConfigError as e:
                    return {"ok": False, "error": str(e)}
                return {"ok": False, "error": f"unknown key {key!r}"}
            value = value[part]
        return {"ok": True, "key": key, "value": value}
    if cmd == "set":
        key = req.get("key")
        if not isinstance(key, str) or "value" not in req:
            return {"ok": False, "error": 'set needs "key" (e.g. "background.blur") and '
                                          '"value"'}
        try:
            new = config_mod.set_value(daemon.cfg, key, req["value"], source="control")
        except ConfigError as e:
            return {"ok": False, "error": str(e)}
        reply = daemon.apply(new)
        if reply.get("ok"):
            reply.update(key=key, value=new.get(key), persisted=False,
                         note="applied in memory only, until the next reload; edit the "
                              "configuration file to keep it")
        return reply
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
        try:
            png, w, h = daemon.snapshot()
        except ValueError as e:
            return {"ok": False, "error": str(e)}
        path = req.get("path")
        if path is not None:
            if not isinstance(path, str) or not os.path.isabs(path):
                return {"ok": False, "error": "path must be an absolute file path"}
            try:
                Path(path).write_bytes(png)
            except OSError as e:
                return {"ok": False, "error": f"{path}: {e.strerror}"}
            return {"ok": True, "path": path, "width": w, "height": h}
        return {"ok": True, "format": "png", "width": w, "height": h,
                "data": base64.b64encode(png).decode("ascii")}
    return {"ok": False, "error": f"unknown command {cmd!r}; use one of "
                                  f"{', '.join(COMMANDS)}"}
