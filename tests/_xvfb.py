"""A private X server (Xvfb) and real screenshots of it, for the window and tray tests.

Debian's ``xvfb`` gives ``/usr/bin/Xvfb``; ImageMagick's ``import`` takes the
screenshots. Tests that need them skip, with the reason, when either is absent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Screenshots are test artifacts (ignored by git); docs/ holds the copies the README shows.
ARTIFACTS = Path(os.environ.get("LIVEBG_ARTIFACTS") or REPO / "artifacts")


def need_xvfb() -> None:
    if shutil.which("Xvfb") is None:
        pytest.skip("needs Xvfb for a real X display (Debian: sudo apt-get install xvfb)")
    if shutil.which("import") is None:
        pytest.skip("needs ImageMagick's `import` for screenshots (sudo apt-get install "
                    "imagemagick)")


class Xvfb:
    """``Xvfb`` on a free display number; ``display`` is e.g. ``":5"``."""

    def __init__(self, width: int = 1280, height: int = 800):
        need_xvfb()
        read, write = os.pipe()
        self.proc = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write), "-screen", "0", f"{width}x{height}x24",
             "-nolisten", "tcp", "-noreset"], pass_fds=(write,), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(write)
        with os.fdopen(read) as f:
            number = f.readline().strip()
        if not number:
            self.proc.kill()
            pytest.skip("Xvfb did not start")
        self.display = f":{number}"

    def env(self) -> dict[str, str]:
        """The environment of a program that should draw on this display (not offscreen)."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
        env["DISPLAY"] = self.display
        return env

    def screenshot(self, path: Path, window: str = "root") -> Path:
        """A PNG of the whole screen (``root``) or of the window with that title."""
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["import", "-window", window, str(path)], env=self.env(), check=True,
                       timeout=60, capture_output=True)
        return path

    def window_exists(self, title: str) -> bool:
        if shutil.which("xwininfo") is None:
            return True
        r = subprocess.run(["xwininfo", "-name", title], check=False, env=self.env(),
                           capture_output=True, timeout=30)
        return r.returncode == 0

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2):
    """``predicate()``'s first truthy value; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
