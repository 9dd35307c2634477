"""The tray app, offscreen, against a real daemon on a still-image input.

Qt runs with the offscreen platform (no display needed). The daemon is a real
``livebg run`` subprocess with its own XDG_RUNTIME_DIR and XDG_CONFIG_HOME, so
the tray reaches it the way it does on a desktop: through the control socket
it finds from the environment. The slow tests also render the settings
window and the menu to artifacts/tray-settings.png and artifacts/tray-menu.png
($LIVEBG_ARTIFACTS when set); docs/ has copies for the README.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before Qt is imported
pytest.importorskip("PySide6.QtWidgets", reason='the tray needs PySide6: pip install '
                    '"livebg[tray]" (it is in the test extra)')
pytest.importorskip("ruamel.yaml", reason='the tray needs ruamel.yaml: pip install "livebg[tray]"')

import cv2  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from livebg.system import autostart  # noqa: E402
from livebg.tray import persist  # noqa: E402
from livebg.tray.daemon_link import (NO_CAMERA, PAUSED, RUNNING, STATES, STOPPED,  # noqa: E402
                                     DaemonLink, classify)

REPO = Path(__file__).resolve().parent.parent
# Screenshots are test artifacts (ignored by git); docs/ holds the copies the README shows.
DOCS = Path(os.environ.get("LIVEBG_ARTIFACTS") or REPO / "artifacts")

CONFIG = """\
# my livebg settings - the tray must keep this comment
background:
  mode: blur   # and this one
  blur: 0.5
daemon:
  on_demand: false
"""


@pytest.fixture(scope="module")
def qapp():
    return QApplication.instance() or QApplication([])


@pytest.fixture
def home(tmp_path, monkeypatch):
    """Private XDG folders, a config.yaml with comments, an input image, two backgrounds."""
    from livebg.stages.sources import SampleSource

    run, cfg = tmp_path / "run", tmp_path / "config"
    run.mkdir(mode=0o700)
    (cfg / "livebg" / "backgrounds").mkdir(parents=True)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(cfg))
    (cfg / "livebg" / "config.yaml").write_text(CONFIG)
    src = SampleSource(width=480, height=270, count=1)
    frame = src.read()
    src.close()
    cv2.imwrite(str(tmp_path / "input.png"), frame.image)
    data = REPO / "livebg" / "data"
    for name, out in (("scene_rocket.jpg", "rocket_launch.jpg"),
                      ("scene_coffee.jpg", "coffee_shop.jpg")):
        img = cv2.resize(cv2.imread(str(data / name)), (480, 270))
        cv2.imwrite(str(cfg / "livebg" / "backgrounds" / out), img)
    return tmp_path


class Daemon:
    """``livebg run`` on the home's input image, as a subprocess."""

    def __init__(self, home: Path):
        self.home = home
        self.proc: subprocess.Popen | None = None
        self.log = home / "daemon.log"

    def start(self, timeout: float = 90.0) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "livebg", "run", "--input", str(self.home / "input.png"),
                 "--output", "null", "--realtime", "--set", "camera.fps=15"],
                env=env, stdout=out, stderr=subprocess.STDOUT, cwd=self.home)
        link = DaemonLink()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"livebg run exited ({self.proc.returncode}):\n{self.log_text()}")
            st = link.status()
            if st.state == RUNNING and st.raw.get("frames"):
                return
            time.sleep(0.2)
        pytest.fail(f"livebg run did not answer within {timeout:g} s:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture
def daemon(home):
    d = Daemon(home)
    d.start()
    yield d
    d.stop()


@pytest.fixture
def tray(qapp, home):
    from livebg.tray.app import Tray

    t = Tray(poll_ms=0, show_icon=False, autostart_backend="xdg")
    yield t
    if t._settings is not None:
        t._settings.close()
    t.timer.stop()


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        QApplication.processEvents()
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def config_file(home: Path) -> Path:
    return home / "config" / "livebg" / "config.yaml"


# ----------------------------------------------------------------- fast tests


def test_persist_keeps_comments_and_other_keys(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG + "output:\n  sinks: [virtual]   # flow list\n")
    cfg = persist.save({"background.blur": 0.8, "camera.width": 640,
                        "output.sinks": ["virtual", "window"]}, path)
    text = path.read_text()
    assert cfg.background.blur == 0.8 and cfg.camera.width == 640
    assert "# my livebg settings - the tray must keep this comment" in text
    assert "mode: blur   # and this one" in text
    assert "blur: 0.8" in text and "on_demand: false" in text
    assert "sinks: [virtual, window]" in text and "# flow list" in text
    assert list(path.parent.iterdir()) == [path], "no temporary file left behind"


def test_persist_refuses_bad_values_and_unparsable_files(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    before = path.read_bytes()
    with pytest.raises(persist.PersistError, match="background.blur = 3: must be a number") as e:
        persist.save({"background.blur": 3}, path)
    assert not e.value.parse and path.read_bytes() == before
    with pytest.raises(persist.PersistError, match="no such file"):
        persist.save({"background.mode": "image", "background.image": "/nonexistent.png"}, path)
    assert path.read_bytes() == before

    broken = b"background: [blur\n  # half-edited by hand\n"
    path.write_bytes(broken)
    with pytest.raises(persist.PersistError, match="not valid YAML at line") as e:
        persist.save({"background.blur": 0.3}, path)
    assert e.value.parse and path.read_bytes() == broken
    path.write_text("backgrund:\n  blur: 0.5\n")  # valid YAML, unknown key: fix it first
    with pytest.raises(persist.PersistError, match="did you mean 'background'"):
        persist.save({"background.blur": 0.3}, path)
    assert path.read_text() == "backgrund:\n  blur: 0.5\n"


def test_persist_creates_missing_file(tmp_path):
    path = tmp_path / "new" / "config.yaml"
    persist.save({"background.mode": "color", "background.color": "#112233"}, path)
    assert "color: '#112233'" in path.read_text() or 'color: "#112233"' in path.read_text()


def test_status_states():
    assert classify(None).state == STOPPED
    assert classify(None, "no reply").state == "error"
    assert classify({"ok": True, "state": "running", "fps": 30}).state == RUNNING
    assert classify({"ok": True, "state": "paused", "paused_by": "user"}).state == PAUSED
    assert classify({"ok": True, "state": "unavailable",
                     "camera": {"problem": "camera /dev/video0 not found"}}).state == NO_CAMERA


def test_icons_differ_by_state(qapp):
    from livebg.tray import icons

    images = {s: icons.pixmap(s, 32).toImage() for s in STATES}
    assert all(not img.isNull() and img.width() == 32 for img in images.values())
    assert len({bytes(img.constBits()) for img in images.values()}) == len(STATES)
    assert not icons.icon(RUNNING).isNull()


def test_autostart_xdg_entry(home):
    path = autostart.desktop_path()
    assert path == home / "config" / "autostart" / "livebg.desktop"
    autostart.set_enabled(True, "xdg")
    assert autostart.is_enabled("xdg")
    text = path.read_text()
    assert "[Desktop Entry]" in text and " run" in text.split("Exec=")[1].splitlines()[0]
    autostart.set_enabled(False, "xdg")
    assert not path.exists() and not autostart.is_enabled("xdg")


def test_core_does_not_import_qt():
    code = ("import sys, livebg.cli, livebg.engine.daemon, livebg.system.control, livebg.tray; "
            "bad = [m for m in sys.modules if m.startswith('PySide6')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_cli_without_qt_says_what_to_install(monkeypatch, capsys):
    import livebg.tray
    from livebg import cli

    monkeypatch.setattr(livebg.tray, "missing", lambda: ["PySide6-Essentials"])
    assert cli.main(["tray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'pip install "livebg[tray]"' in err[0]


def test_desktop_entry_and_icon_shipped():
    entry = (REPO / "config" / "livebg.desktop").read_text()
    assert "Exec=livebg tray" in entry and "Icon=livebg" in entry
    from livebg.tray import icons

    assert icons.svg_bytes().lstrip().startswith(b"<?xml")


# ----------------------------------------------------------------- against a daemon


@pytest.mark.slow
def test_menu_actions_change_the_daemon(daemon, tray, home):
    link = tray.link
    assert tray.refresh().state == RUNNING
    tray.rebuild_menu()

    tray.action("blur:0.85").trigger()
    assert link.get("background.blur") == 0.85 and link.get("background.mode") == "blur"
    assert tray.last_message == "saved and applied"

    tray.action("effect").trigger()
    assert link.status().state == PAUSED and tray.status.state == PAUSED
    tray.rebuild_menu()
    assert not tray.action("effect").isChecked()
    tray.action("effect").trigger()
    assert link.status().state == RUNNING

    tray.rebuild_menu()
    tray.action("file:rocket_launch.jpg").trigger()
    bg = link.get("background")
    assert bg["mode"] == "image" and bg["image"].endswith("rocket_launch.jpg")

    tray.rebuild_menu()
    tray.action("model:landscape").trigger()
    assert link.get("model.name") == "landscape"
    assert link.status().raw["model"] == "landscape"
    tray.rebuild_menu()
    tray.action("model:livebg").trigger()  # livebg's own net (issue 10), loaded live
    assert link.get("model.name") == "livebg"
    assert link.status().raw["model"] == "livebg"

    from livebg.tray.app import field_choices

    refine = field_choices("refine.mode")
    other = next(m for m in refine if m != link.get("refine.mode")) if len(refine) > 1 else None
    if other:
        tray.rebuild_menu()
        tray.action(f"refine:{other}").trigger()
        assert link.get("refine.mode") == other

    tray.rebuild_menu()  # subject: applied live through the control socket, and saved
    tray.action("subject:all").trigger()
    assert link.get("subject") == "all" and "subject: all" in config_file(home).read_text()
    tray.rebuild_menu()
    assert tray.action("subject:all").isChecked() and not tray.action("subject:main").isChecked()

    tray.rebuild_menu()
    tray.action("none").trigger()
    assert link.get("background.mode") == "none"
    text = config_file(home).read_text()
    assert "# my livebg settings" in text and "mode: none   # and this one" in text

    # The picture for the README: blur on, menu as the user sees it.
    tray.action("blur:0.85").trigger()
    tray.refresh()
    tray.rebuild_menu()
    tray.menu.popup(tray.menu.pos())
    tray.menu.adjustSize()
    QApplication.processEvents()
    shot = tray.menu.grab()
    tray.menu.hide()
    DOCS.mkdir(parents=True, exist_ok=True)
    assert shot.save(str(DOCS / "tray-menu.png"))
    assert shot.width() > 100 and shot.height() > 200


@pytest.mark.slow
def test_settings_window_applies_and_persists(daemon, tray, home):
    link = tray.link
    window = tray.open_settings()
    QApplication.processEvents()
    assert window.collect()["background.blur"] == 0.5
    window.blur.setValue(70)
    window.login.setChecked(True)
    assert window.changes() == {"background.blur": 0.7}
    assert window.apply()
    assert link.get("background.blur") == 0.7
    text = config_file(home).read_text()
    assert "blur: 0.7" in text and "# my livebg settings - the tray must keep this comment" in text
    assert "mode: blur   # and this one" in text
    assert autostart.desktop_path().is_file()
    assert "saved and applied" in window.message.text()

    # Size and rate persist (they take effect when the camera reopens).
    window.size.setCurrentIndex(window.size.findData("640x480"))
    window.fps.setValue(24)
    assert window.apply()
    cfg = persist.load(config_file(home))[0]
    assert (cfg.camera.width, cfg.camera.height, cfg.camera.fps) == (640, 480, 24)

    assert window.update_preview()
    wait_for(lambda: window.update_preview() and not window.preview.pixmap().isNull(),
             what="a preview frame")
    window.resize(window.sizeHint())
    QApplication.processEvents()
    DOCS.mkdir(parents=True, exist_ok=True)
    assert window.grab().save(str(DOCS / "tray-settings.png"))


@pytest.mark.slow
def test_survives_a_daemon_restart(daemon, tray):
    link = tray.link
    assert tray.refresh().state == RUNNING
    first_pid = tray.status.raw["pid"]

    daemon.stop()
    assert tray.refresh().state == STOPPED
    tray.rebuild_menu()
    tray.action("start")  # the menu offers to start it
    tray.apply({"background.blur": 0.2})
    assert "not running" in tray.last_message  # saved; applied when it starts

    daemon.start()
    assert tray.refresh().state == RUNNING
    assert tray.status.raw["pid"] != first_pid
    assert link.get("background.blur") == 0.2  # read from config.yaml at start
    tray.rebuild_menu()
    tray.action("blur:0.85").trigger()
    assert link.get("background.blur") == 0.85
    tray.action("effect").trigger()
    assert link.status().state == PAUSED


@pytest.mark.slow
def test_unparsable_config_is_not_overwritten(daemon, tray, home):
    path = config_file(home)
    broken = b"background:\n  mode: blur\n  blur: [0.5\n# I was editing this by hand\n"
    path.write_bytes(broken)
    window = tray.open_settings()
    QApplication.processEvents()
    assert "not valid YAML" in window.message.text()
    tray.rebuild_menu()
    assert "not valid YAML" in tray.action("problem").text()

    tray.action("blur:0.3").trigger()
    assert path.read_bytes() == broken
    assert "not valid YAML" in tray.last_error and "not saved" in tray.last_error
    assert "not valid YAML" in window.message.text()
    assert tray.link.get("background.blur") == 0.3  # still applied live

    window.blur.setValue(90)
    assert not window.apply()
    assert path.read_bytes() == broken
    assert "not saved" in window.message.text()


@pytest.mark.slow
def test_tray_starts_the_daemon_and_shows_no_camera(qapp, home, monkeypatch):
    from livebg.tray.app import Tray

    monkeypatch.setattr(autostart, "unit_installed", lambda: False)  # never the real unit

    config_file(home).write_text(CONFIG + "camera:\n  device: /dev/video99   # not there\n"
                                 "output:\n  sinks: [null]\n")
    t = Tray(poll_ms=0, show_icon=False, start_daemon=True)
    child = t.link._child
    try:
        assert child is not None, t.last_message
        assert wait_for(lambda: t.refresh().state == NO_CAMERA, 30, "state 'no camera'")
        assert "video99" in t.status.text
    finally:
        t.timer.stop()
        if child is not None:
            child.terminate()
            child.wait(timeout=15)
