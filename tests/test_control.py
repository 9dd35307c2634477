"""The control socket against a real running daemon (file source, real threads)."""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import write_sample_clip

from livebg.system import control
from livebg.cli import main
from livebg.config import Config, set_value
from livebg.system.control import AlreadyRunning, ControlServer
from livebg.engine.daemon import Daemon

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
    end = time.monotonic() + 20
    while (not sock.exists() or d.stats.frames < 3) and time.monotonic() < end:
        time.sleep(0.02)
    assert sock.exists() and d.stats.frames >= 3
    yield d
    d.stop()
    t.join(2)
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
    assert main(["ctl", "set", "background.mode", "sparkles"]) == 1
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
