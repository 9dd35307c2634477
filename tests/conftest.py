"""Shared fixtures: the dev photos, the shipped sample, small frames."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


def portraits_dir() -> Path | None:
    """The dev photos: $LIVEBG_TEST_DATA or ../shared/data/portraits; None if absent."""
    env = os.environ.get("LIVEBG_TEST_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data" / "portraits"
    return path if (path / "images").is_dir() and (path / "masks").is_dir() else None


@pytest.fixture(scope="session")
def portraits() -> Path:
    path = portraits_dir()
    if path is None:
        pytest.skip("dev photos not found: set LIVEBG_TEST_DATA or put them at "
                    "../shared/data/portraits (images/ + masks/)")
    return path


@pytest.fixture(scope="session")
def portrait_pairs(portraits) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """(BGR image, float32 mask in {0,1}, stem) for every dev photo."""
    pairs = []
    for img in sorted((portraits / "images").glob("*.jpg")):
        mask = cv2.imread(str(portraits / "masks" / f"{img.stem}.png"), cv2.IMREAD_GRAYSCALE)
        pairs.append((cv2.imread(str(img)), (mask > 127).astype(np.float32), img.stem))
    assert pairs, f"no photos in {portraits / 'images'}"
    return pairs


@pytest.fixture(scope="session")
def sample_photo() -> np.ndarray:
    """The shipped sample photo (BGR uint8), so contract tests need no dev photos."""
    img = cv2.imread(str(REPO / "livebg" / "data" / "astronaut.jpg"))
    assert img is not None
    return img


@pytest.fixture(autouse=True)
def private_dirs(tmp_path_factory, monkeypatch) -> Path:
    """A private $XDG_RUNTIME_DIR (returned; control sockets never collide) and config home.

    Autouse: no test may reach the user's real control socket or config file, so
    the suite passes while a livebg daemon runs for the same user.
    """
    home = tmp_path_factory.mktemp("xdg")  # beside the test's tmp_path, which stays empty
    run = home / "run"
    run.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "cfg"))
    return run


def write_sample_clip(path: Path, width: int, height: int, frames: int) -> Path:
    """A real MJPEG/MPEG-4 clip (by suffix) of the built-in sample, ``frames`` long."""
    from livebg.sinks.files import VideoFileSink
    from livebg.stages.sources import SampleSource

    src = SampleSource(width=width, height=height, count=frames)
    with VideoFileSink(path, width, height, 30) as sink:
        for i in range(frames):
            sink.write(src.render(i))
    return path


def daemon_cfg(clip: Path, **keys):
    """A Config reading ``clip`` into a null sink with the cheap stages (landscape net, no refine)."""
    from livebg.config import Config, set_value

    cfg = Config()
    for k, v in {"input": str(clip), "output.sinks": ["null"], "refine.mode": "none",
                 "model.name": "landscape", "log.stats_interval": 0, **keys}.items():
        cfg = set_value(cfg, k, v)
    return cfg


def wait_for(cond, timeout=30.0, step=0.02) -> bool:
    """Poll ``cond`` until true or ``timeout`` s (generous: a loaded machine is slow)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


def start_thread(daemon) -> threading.Thread:
    """Run ``daemon.run`` on a daemon thread and return the thread."""
    t = threading.Thread(target=daemon.run, daemon=True)
    t.start()
    return t
