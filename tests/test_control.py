"""The control socket against a real running daemon (file source, real threads)."""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import write_sample_clip

from livebg.cli import main
from livebg.config import Config, set_value
from livebg.engine.daemon import Daemon
from livebg.system import control
from livebg.system.control import AlreadyRunning, ControlServer
from livebg.system.safepaths import UnsafePath

W, H = 320, 180


@pytest.fixture
def runtime(private_dirs) -> Path:
    return private_dirs


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_sample_clip(tmp_path_factory.mktemp("clip") / "clip.avi", W, H, 20)


@pytest.fixture
def daemon(runtime, clip):
    cfg = Config()
    for k, v in {"input": str(clip), "output.sinks": ["null"], "refine.mode": "none",
                 "model.name": "landscape", "log.stats_interval": 0}.items():
        cfg = set_value(cfg, k, v)
    d = Daemon(cfg, realtime=True, watch_config=False)
    t = threading.Thread(target=d.run, daemon=True)
    t.start()
    sock = runtime / "livebg" / "control.sock"
    end = time.monotonic() + 120  # generous: a busy machine compiles and loads slowly
    while (not sock.exists() or d.stats.frames < 3) and time.monotonic() < end:
        time.sleep(0.02)
    assert sock.exists() and d.stats.frames >= 3
    yield d
    d.stop()
    t.join(30)
    assert not t.is_alive()


def test_socket_is_private(daemon, runtime):
    sock = runtime / "livebg" / "control.sock"
    assert stat.S_ISSOCK(sock.stat().st_mode)
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700


def test_status(daemon):
    r = control.request({"cmd": "status", "id": 7})
    assert r["ok"] and r["id"] == 7
    for key in ("fps", "stages_ms", "latency_ms", "camera", "model", "provider", "refine",
                "paused", "sinks", "config", "state"):
        assert key in r
    assert r["state"] == "running" and r["paused"] is False
    assert r["sinks"] == ["null"] and r["model"] == "landscape"
    assert r["provider"] == "CPUExecutionProvider"
    assert {"segment", "composite"} <= set(r["stages_ms"])
    assert r["latency_ms"]["p95"] >= r["latency_ms"]["p50"] > 0
    assert r["output"] == {"width": W, "height": H, "fps": 30.0}


def test_get_and_set(daemon):
    assert control.request({"cmd": "get", "key": "background.blur"})["value"] == 0.5
    assert control.request({"cmd": "get", "key": "background"})["value"]["mode"] == "blur"
    comp = daemon.processor.compositor
    r = control.request({"cmd": "set", "key": "background.blur", "value": 0.8})
    assert r["ok"] and r["value"] == 0.8 and r["persisted"] is False
    assert daemon.cfg.background.blur == 0.8 and daemon.processor.compositor is not comp
    # A string is parsed like the command line's --set.
    assert control.request({"cmd": "set", "key": "background.blur", "value": "0.3"})["value"] == 0.3
    bad = control.request({"cmd": "set", "key": "background.blur", "value": 7})
    assert not bad["ok"] and "background.blur = 7" in bad["error"] and "0 to 1" in bad["error"]
    assert daemon.cfg.background.blur == 0.3
    unknown = control.request({"cmd": "get", "key": "background.blurr"})
    assert not unknown["ok"] and "did you mean 'blur'" in unknown["error"]


def test_bad_messages_get_errors_and_the_daemon_goes_on(daemon):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(control.default_path()))
        f = s.makefile("rwb")

        def ask(raw: bytes) -> dict:
            f.write(raw)
            f.flush()
            return json.loads(f.readline())

        r = ask(b"{not json\n")
        assert not r["ok"] and "not valid JSON" in r["error"]
        r = ask(b"[1, 2]\n")
        assert not r["ok"] and "object" in r["error"]
        r = ask(b'{"cmd": "explode"}\n')
        assert not r["ok"] and "unknown command 'explode'" in r["error"]
        r = ask(b'{"cmd": "set", "key": "background.blur"}\n')
        assert not r["ok"] and "value" in r["error"]
        # 1 MB in one line: one error reply, then the same connection still works.
        big = b'{"cmd": "status", "pad": "' + b"x" * (1 << 20) + b'"}\n'
        r = ask(big)
        assert not r["ok"] and "too long" in r["error"]
        r = ask(b'{"cmd": "status"}\n')
        assert r["ok"] and r["state"] == "running"
        r = ask(b"\xff\xfe\n")
        assert not r["ok"]
    assert control.request({"cmd": "status"})["ok"]


def test_pause_and_resume(daemon):
    r = control.request({"cmd": "pause"})
    assert r["ok"] and r["paused"] is True
    time.sleep(0.3)
    st = control.request({"cmd": "status"})
    assert st["state"] == "paused" and st["paused_by"] == "user"
    assert daemon.capture.source is None, "pausing releases the camera"
    frames = daemon.stats.frames
    time.sleep(0.3)
    assert daemon.stats.frames == frames
    assert control.request({"cmd": "resume"})["ok"]
    end = time.monotonic() + 30
    while daemon.stats.frames <= frames + 3 and time.monotonic() < end:
        time.sleep(0.02)
    assert daemon.stats.frames > frames + 3
    assert control.request({"cmd": "status"})["state"] == "running"


def test_snapshot(daemon, tmp_path):
    r = control.request({"cmd": "snapshot"})
    assert r["ok"] and r["format"] == "png"
    img = cv2.imdecode(np.frombuffer(base64.b64decode(r["data"]), np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (H, W, 3)
    target = tmp_path / "snap.png"
    r = control.request({"cmd": "snapshot", "path": str(target)})
    assert r["ok"] and cv2.imread(str(target)).shape == (H, W, 3)
    assert not control.request({"cmd": "snapshot", "path": "relative.png"})["ok"]
    r = control.request({"cmd": "snapshot", "format": "jpeg"})
    assert r["ok"] and base64.b64decode(r["data"])[:2] == b"\xff\xd8"


def test_ctl_command_line(daemon, tmp_path, capsys):
    assert main(["ctl", "status"]) == 0
    out = capsys.readouterr().out
    assert "state:    running" in out and "latency:" in out
    assert main(["ctl", "set", "background.mode", "color"]) == 0
    assert "in memory only" in capsys.readouterr().out
    assert main(["ctl", "get", "background.mode"]) == 0
    assert capsys.readouterr().out.strip() == "color"
    assert main(["ctl", "--json", "get", "background.blur"]) == 0
    assert json.loads(capsys.readouterr().out)["value"] == 0.5
    assert main(["ctl", "set", "background.mode", "sparkles"]) == 2
    assert "background.mode = 'sparkles'" in capsys.readouterr().err
    assert main(["ctl", "snapshot", str(tmp_path / "s.png")]) == 0
    assert cv2.imread(str(tmp_path / "s.png")).shape == (H, W, 3)
    assert main(["ctl", "reload"]) == 0  # the file is absent: defaults + no overrides


def test_second_daemon_is_refused_and_stale_socket_replaced(runtime):
    path = runtime / "livebg" / "control.sock"
    first = ControlServer(path, lambda req: {"ok": True})
    first.start()
    try:
        with pytest.raises(AlreadyRunning, match="already running"):
            ControlServer(path, lambda req: {"ok": True}).start()
        assert control.request({"cmd": "x"}, path) == {"ok": True}
    finally:
        first.close()
    # A socket file left behind by a daemon that died (nobody listens) is replaced.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    assert path.exists()
    server = ControlServer(path, lambda req: {"ok": True, "fresh": True})
    server.start()
    try:
        assert control.request({"cmd": "x"}, path)["fresh"]
    finally:
        server.close()
    assert not path.exists()


def test_ctl_without_daemon_is_one_line(runtime, capsys):
    assert main(["ctl", "status"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not running" in err and "\n" not in err


def test_handler_exception_is_an_error_reply(runtime):
    path = runtime / "livebg" / "control.sock"

    def handler(req):
        raise RuntimeError("boom")

    server = ControlServer(path, handler)
    server.start()
    try:
        r = control.request({"cmd": "status"}, path)
        assert not r["ok"] and "boom" in r["error"]
        assert control.request({"cmd": "status"}, path)["ok"] is False  # still serving
    finally:
        server.close()
    assert os.path.exists(path) is False


NOBODY = 65534  # tests run as root here: chown to nobody stands for "another local user"


def _strict_json(raw: bytes) -> dict:
    def no_constant(name):
        raise AssertionError(f"reply is not strict JSON: {name}")
    return json.loads(raw, parse_constant=no_constant)


def _run_cli(*argv, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "livebg", *argv], capture_output=True, check=False,
                          text=True, timeout=timeout, env=os.environ.copy())


# -- issue 11 item 1: daemon.socket never deletes what it finds, never chmods a folder -------


def test_socket_setting_never_deletes_a_file_nor_chmods_its_folder(runtime, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    important = folder / "important.txt"
    important.write_text("my notes\n")
    with pytest.raises(UnsafePath, match="not a socket"):
        ControlServer(important, lambda req: {"ok": True}).start()
    assert important.read_text() == "my notes\n"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert not (folder / "important.txt.lock").exists()


def test_bad_socket_settings_are_one_line_and_exit_2(runtime, tmp_path, clip):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file.txt").write_text("keep me\n")
    long_path = tmp_path / ("x" * 120) / "control.sock"
    for setting, words in ((tmp_path / "file.txt", "not a socket"),
                           (tmp_path / "dir", "not a socket"),
                           (long_path, "too long")):
        r = _run_cli("run", "--input", str(clip), "--output", "null", "--realtime",
                     "--frames", "5", "--set", f"daemon.socket={setting}")
        err = r.stderr.strip()
        errors = [line for line in err.splitlines() if line.startswith("livebg: error: ")]
        assert r.returncode == 2, err
        assert "Traceback" not in err and len(errors) == 1 and words in errors[0], err
    assert (tmp_path / "file.txt").read_text() == "keep me\n"
    assert (tmp_path / "dir").is_dir() and not long_path.parent.exists()


# -- issue 11 item 2: the runtime folder and the lock file -----------------------------------


def test_runtime_folder_of_another_user_is_refused(runtime):
    folder = runtime / "livebg"
    folder.mkdir(mode=0o700)
    os.chown(folder, NOBODY, NOBODY)
    with pytest.raises(UnsafePath, match="belongs to .*not to you"):
        ControlServer(control.default_path(), lambda req: {"ok": True}).start()
    assert os.listdir(folder) == [] and folder.stat().st_uid == NOBODY


def test_runtime_folder_open_to_others_is_refused_not_chmodded(runtime):
    folder = runtime / "livebg"
    folder.mkdir()
    os.chmod(folder, 0o777)
    with pytest.raises(UnsafePath, match="open to other users"):
        ControlServer(control.default_path(), lambda req: {"ok": True}).start()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 and os.listdir(folder) == []


def test_runtime_folder_that_is_a_symlink_is_refused(runtime, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (runtime / "livebg").symlink_to(elsewhere)
    with pytest.raises(UnsafePath, match="symbolic link"):
        ControlServer(control.default_path(), lambda req: {"ok": True}).start()
    assert os.listdir(elsewhere) == []


def test_lock_file_symlink_is_never_followed(runtime, tmp_path):
    folder = runtime / "livebg"
    folder.mkdir(mode=0o700)
    victim = tmp_path / "notes.txt"
    victim.write_text("the victim's notes\n")
    (folder / "control.sock.lock").symlink_to(victim)
    with pytest.raises(UnsafePath, match="symbolic link"):
        ControlServer(control.default_path(), lambda req: {"ok": True}).start()
    assert victim.read_text() == "the victim's notes\n"


def test_new_runtime_folder_is_made_0700_and_fallback_is_per_user(runtime, monkeypatch):
    from livebg.config import runtime_dir

    server = ControlServer(control.default_path(), lambda req: {"ok": True})
    server.start()
    try:
        st = os.lstat(runtime / "livebg")
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700
        assert st.st_uid == os.getuid()
        lock = os.lstat(runtime / "livebg" / "control.sock.lock")
        assert stat.S_ISREG(lock.st_mode) and stat.S_IMODE(lock.st_mode) == 0o600
    finally:
        server.close()
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert str(os.getuid()) in str(runtime_dir())


def test_client_refuses_a_socket_of_another_user(runtime):
    path = control.default_path()
    server = ControlServer(path, lambda req: {"ok": True, "secret": "yes"})
    server.start()
    try:
        os.chown(path, NOBODY, NOBODY)
        with pytest.raises(control.ControlError, match="not to you"):
            control.request({"cmd": "status"}, path)
    finally:
        server.close()


# -- issue 11 item 3: snapshots never overwrite, never follow links, never block --------------


def test_snapshot_refuses_existing_files_links_fifos_and_odd_suffixes(daemon, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("background:\n  blur: 0.7\n")
    link = tmp_path / "link.png"
    link.symlink_to(config)
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    existing = tmp_path / "old.png"
    existing.write_bytes(b"old picture")
    for target, words in ((existing, "already exists"), (link, "symbolic link"),
                          (fifo, "FIFO"), (tmp_path / "snap.txt", ".png"),
                          (tmp_path / "dir" / "x.png", "no such folder")):
        r = control.request({"cmd": "snapshot", "path": str(target)}, timeout=30)
        assert not r["ok"] and words in r["error"], (target, r)
    assert config.read_text() == "background:\n  blur: 0.7\n"
    assert existing.read_bytes() == b"old picture"
    assert not (tmp_path / "snap.txt").exists()
    r = control.request({"cmd": "snapshot", "path": str(existing), "overwrite": True})
    assert r["ok"] and cv2.imread(str(existing)).shape == (H, W, 3)
    jpg = tmp_path / "snap.jpg"
    assert control.request({"cmd": "snapshot", "path": str(jpg)})["ok"]
    assert jpg.read_bytes()[:2] == b"\xff\xd8" and existing.read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "config.yaml", "fifo.png", "link.png", "old.png", "snap.jpg"]  # no temporary left


def test_ctl_snapshot_never_overwrites_without_asking(daemon, tmp_path, capsys):
    target = tmp_path / "s.png"
    target.write_bytes(b"mine")
    assert main(["ctl", "snapshot", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert "already exists" in err and "--overwrite" in err and "\n" not in err
    assert target.read_bytes() == b"mine"
    assert main(["ctl", "snapshot", str(tmp_path / "s.bmp")]) == 2
    assert ".png" in capsys.readouterr().err and not (tmp_path / "s.bmp").exists()
    assert main(["ctl", "snapshot", str(target), "--overwrite"]) == 0
    assert cv2.imread(str(target)).shape == (H, W, 3)
    assert main(["ctl", "snapshot", str(tmp_path / "s.jpeg")]) == 0
    assert (tmp_path / "s.jpeg").read_bytes()[:2] == b"\xff\xd8"


# -- issue 11 item 13: bounded clients, a JSON answer to every message ------------------------


HOG = """
import socket, sys, time
conns = []
for _ in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    conns.append(s)
print("connected", flush=True)
time.sleep(120)
"""


def test_idle_connections_of_another_process_never_lock_out_ctl(runtime):
    path = control.default_path()
    server = ControlServer(path, lambda req: {"ok": True, "served": True})
    server.start()
    hog = subprocess.Popen([sys.executable, "-c", HOG, str(path), str(control.MAX_CLIENTS + 4)],
                           stdout=subprocess.PIPE, text=True)
    try:
        assert hog.stdout.readline().strip() == "connected"
        for _ in range(3):
            assert control.request({"cmd": "status"}, path)["served"]
        assert server.clients <= control.MAX_CLIENTS
    finally:
        hog.kill()
        hog.wait()
        server.close()


def test_idle_connection_is_closed_after_the_timeout(runtime):
    path = control.default_path()
    server = ControlServer(path, lambda req: {"ok": True}, idle_timeout=0.5)
    server.start()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(str(path))
            f = s.makefile("rb")
            r = _strict_json(f.readline())
            assert not r["ok"] and "no request for 0.5 s" in r["error"]
            assert f.readline() == b""  # closed by the daemon
        assert control.request({"cmd": "status"}, path)["ok"]
    finally:
        server.close()


def test_hostile_messages_each_get_a_json_answer(daemon, caplog):
    caplog.set_level(logging.DEBUG, logger="livebg.system.control")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(str(control.default_path()))
        f = s.makefile("rwb")

        def ask(raw: bytes) -> dict:
            f.write(raw + b"\n")
            f.flush()
            return _strict_json(f.readline())

        for raw, words in ((b"[" * 60_000, "nested"),
                           (b'{"cmd": "set", "key": "background.blur", "value": ' + b"7" * 4300
                            + b"}", "digits"),
                           (b'{"cmd": "set", "key": "background.blur", "value": ' + b"9" * 400
                            + b'.5}', "out of range"),
                           (b'{"cmd": "snapshot", "path": "/tmp/a\\u0000b.png"}', "NUL"),
                           (b'{"cmd": "status", "id": NaN}', "NaN"),
                           (b'{"cmd": "status", "id": Infinity}', "Infinity")):
            r = ask(raw)
            assert r["ok"] is False and words in r["error"], (raw[:60], r)
            assert "internal error" not in r["error"]
        r = ask(b'{"cmd": "status", "id": 1e3}')
        assert r["ok"] and r["id"] == 1000.0
    assert not [rec for rec in caplog.records if rec.exc_info], "no traceback in the log"
    assert daemon.cfg.background.blur == 0.5


# -- issue 11 item 14: read-modify-write is serialised -----------------------------------------


def test_concurrent_sets_never_undo_each_other(daemon, monkeypatch):
    import livebg.config as config_mod

    real = config_mod.set_value
    entered = threading.Event()
    first = threading.Lock()

    def slow_set_value(cfg, key, value, source="command line"):
        # The first caller waits (up to 5 s) for the second to start its own edit: with
        # the edits serialised the second cannot start, so this only times out.
        if first.acquire(blocking=False):
            new = real(cfg, key, value, source)
            entered.wait(5)
            return new
        entered.set()
        return real(cfg, key, value, source)

    monkeypatch.setattr(config_mod, "set_value", slow_set_value)
    replies = {}

    def client(key, value):
        replies[key] = control.request({"cmd": "set", "key": key, "value": value}, timeout=60)

    a = threading.Thread(target=client, args=("background.blur", 0.9))
    a.start()
    end = time.monotonic() + 20
    while not first.locked() and time.monotonic() < end:
        time.sleep(0.01)
    b = threading.Thread(target=client, args=("background.color", "#112233"))
    b.start()
    a.join(60)
    b.join(60)
    assert replies["background.blur"]["ok"] and replies["background.color"]["ok"]
    assert daemon.cfg.background.blur == 0.9
    assert daemon.cfg.background.color == "#112233"


# -- issue 15 item 15: every ctl usage error is one line and exit status 2 ----------------------


def test_ctl_usage_errors_share_one_wording_and_exit_2(daemon, capsys):
    assert main(["ctl", "get", "nonexist.key"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("livebg: error: control: top level: unknown key 'nonexist'")
    assert "key: top level" not in err and err.count("\n") == 1
    assert main(["ctl", "set", "nonexist.key", "1"]) == 2
    assert capsys.readouterr().err == err
    assert main(["ctl", "set", "background.blur"]) == 2
    assert capsys.readouterr().err.startswith("livebg: error: usage: livebg ctl set")
    assert main(["ctl", "--json", "get", "nonexist.key"]) == 2
    assert json.loads(capsys.readouterr().out)["ok"] is False


def test_the_tray_s_daemon_log_is_never_written_through_a_link_or_a_fifo(tmp_path):
    """Issue 11: daemon.log (the tray's `livebg run` output) is opened like the lock:
    created 0600, appended to, never through a symlink, never a FIFO."""
    from livebg.system.safepaths import UnsafePath, open_log

    run = tmp_path / "run"
    log_file = run / "daemon.log"
    fd = open_log(log_file)
    os.write(fd, b"one\n")
    os.close(fd)
    fd = open_log(log_file)
    os.write(fd, b"two\n")
    os.close(fd)
    assert log_file.read_bytes() == b"one\ntwo\n"
    assert stat.S_IMODE(os.stat(log_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(run).st_mode) == 0o700
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    log_file.unlink()
    log_file.symlink_to(victim)
    with pytest.raises(UnsafePath, match="symbolic link"):
        open_log(log_file)
    assert victim.read_text() == "mine"
    log_file.unlink()
    os.mkfifo(log_file)
    with pytest.raises(UnsafePath, match="cannot open the log"):
        open_log(log_file)  # no reader: refused at once, never blocks
    reader = os.open(log_file, os.O_RDONLY | os.O_NONBLOCK)  # someone holds it open
    try:
        with pytest.raises(UnsafePath, match="is a FIFO, not a log of yours"):
            open_log(log_file)
    finally:
        os.close(reader)
