"""A running daemon keeps its last good configuration through unusable files and keeps
the command-line overrides on every reload (issue 11, items 8 and 9)."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import write_sample_clip

from livebg.config import Config, set_values
from livebg.engine.daemon import Daemon
from livebg.engine.reconfig import ConfigFile


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_sample_clip(tmp_path_factory.mktemp("clip") / "clip.avi", 320, 180, 20)


@pytest.fixture
def beach(tmp_path) -> Path:
    path = tmp_path / "beach.jpg"
    img = np.zeros((90, 160, 3), np.uint8)
    img[:, :, 0] = 200
    cv2.imwrite(str(path), img)
    return path


def test_overrides_that_depend_on_each_other_survive_a_reload(tmp_path, beach):
    """`livebg run --background beach.jpg`: mode image and the file, set together."""
    path = tmp_path / "config.yaml"
    path.write_text("background:\n  blur: 0.3\n")
    overrides = {"background.mode": "image", "background.image": str(beach)}
    cfg = ConfigFile(path, overrides).load()
    assert cfg.background.mode == "image" and cfg.background.image == str(beach)
    assert cfg.background.blur == 0.3


def _wait(cond, timeout=30.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end and not cond():
        time.sleep(0.02)
    return cond()


def test_daemon_keeps_the_last_good_configuration(clip, tmp_path, beach, caplog):
    from livebg.engine.capture import PacedSource
    from livebg.stages.sources import VideoFileSource

    path = tmp_path / "config.yaml"
    path.write_text("log:\n  stats_interval: 0\n")
    overrides = {"input": str(clip), "output.sinks": "[null]", "refine.mode": "none",
                 "model.name": "landscape", "background.mode": "image",
                 "background.image": str(beach)}
    cfg = set_values(Config(), overrides)
    d = Daemon(cfg, config_path=path, overrides=overrides, realtime=True, control=False,
               watch_config=False,
               source_factory=lambda c, live: PacedSource(VideoFileSource(clip, loop=True)))
    t = threading.Thread(target=d.run, daemon=True)
    t.start()
    try:
        assert _wait(lambda: d.stats.frames >= 3, 120.0), (d.state(), d.errors)
        # A good edit applies, and the command-line background stays.
        path.write_text("log:\n  stats_interval: 0\nbackground:\n  fit: fit\n")
        reply = d.reload()
        assert reply["ok"], reply
        assert d.cfg.background.fit == "fit" and d.cfg.background.image == str(beach)
        good = d.cfg
        replacements = {
            "empty": lambda: path.write_bytes(b""),
            "not UTF-8": lambda: path.write_bytes(b"log:\n  level: d\xffbug\n"),
            "nested": lambda: path.write_bytes(b"model: " + b"[" * 2000),
            "folder": lambda: path.mkdir(),
            "symlink loop": lambda: path.symlink_to(path.name),
            "does not exist": lambda: path.symlink_to(tmp_path / "gone.yaml"),
            "not a regular file": lambda: path.symlink_to("/dev/zero"),
        }
        for why, make in replacements.items():
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
            elif os.path.lexists(path):
                path.unlink()
            make()
            caplog.clear()
            with caplog.at_level(logging.ERROR):
                reply = d.reload()
            assert not reply["ok"] and why in reply["error"], (why, reply)
            assert d.cfg is good, why
            assert any(why in r.getMessage() and "keeping the running configuration"
                       in r.getMessage() for r in caplog.records), why
        frames = d.stats.frames
        assert _wait(lambda: d.stats.frames > frames + 2), "still producing frames"
    finally:
        d.stop()
        t.join(5)
