"""The tray app, offscreen, against a real daemon on a still-image input.

Qt runs with the offscreen platform (no display needed). The daemon is a real
``livebg run`` subprocess with its own XDG_RUNTIME_DIR and XDG_CONFIG_HOME, so
the tray reaches it the way it does on a desktop: through the control socket
it finds from the environment. One slow test runs the tray on a real X
display (Xvfb, Qt's xcb platform) and takes real screenshots of the settings
window and the menu: artifacts/tray-settings-x11.png and tray-menu-x11.png
($LIVEBG_ARTIFACTS when set); docs/tray-*.png are copies for the README.
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
def test_settings_window_applies_every_change_at_once(daemon, tray, home):
    """15.1: no Apply button; a choice applies at once, a slider once it rests."""
    from PySide6.QtWidgets import QPushButton

    link = tray.link
    window = tray.open_settings()
    QApplication.processEvents()
    assert "Apply" not in [b.text() for b in window.findChildren(QPushButton)]
    assert window.collect()["background.blur"] == 0.5

    for v in (55, 60, 65, 70):  # a drag: one change once it rests, not one per step
        window.blur.setValue(v)
        QApplication.processEvents()
    assert link.get("background.blur") == 0.5, "not while the slider is still moving"
    wait_for(lambda: link.get("background.blur") == 0.7, what="the blur to apply by itself")
    text = config_file(home).read_text()
    assert "blur: 0.7" in text and "# my livebg settings - the tray must keep this comment" in text
    assert "mode: blur   # and this one" in text
    assert "saved and applied" in window.message.text()

    window.refine.setCurrentIndex(window.refine.findData("guided"))
    assert link.get("refine.mode") == "guided", "a choice applies at once"
    window.login.setChecked(True)
    assert autostart.desktop_path().is_file(), "start at login switches at once"
    window.login.setChecked(False)
    assert not autostart.desktop_path().exists()

    # Size and rate persist (they take effect when the camera reopens).
    window.size.setCurrentIndex(window.size.findData("640x480"))
    window.fps.setValue(24)
    wait_for(lambda: persist.load(config_file(home))[0].camera.fps == 24, what="fps saved")
    cfg = persist.load(config_file(home))[0]
    assert (cfg.camera.width, cfg.camera.height, cfg.camera.fps) == (640, 480, 24)

    # A picture mode waits for its file instead of failing.
    window.mode.setCurrentIndex(window.mode.findData("image"))
    assert link.get("background.mode") == "blur" and "choose a picture" in window.message.text()
    picture = home / "config" / "livebg" / "backgrounds" / "coffee_shop.jpg"
    window.image.setText(str(picture))
    window.image.editingFinished.emit()  # what Enter or leaving the field sends
    assert link.get("background.mode") == "image"
    assert link.get("background.image") == str(picture)


@pytest.mark.slow
def test_settings_window_follows_the_daemon(daemon, tray, home):
    """15.2 and 15.5: the open window shows what the daemon runs, whoever changed it."""
    link = tray.link
    window = tray.open_settings()
    QApplication.processEvents()
    assert window.mode.currentData() == "blur" and window.blur.value() == 50

    tray.rebuild_menu()
    tray.action("blur:0.85").trigger()            # from the menu
    assert window.blur.value() == 85 and window.blur_value.text() == "0.85"
    link.set("background.mode", "color")          # from `livebg ctl` or the file
    wait_for(lambda: tray.refresh() and window.mode.currentData() == "color", 60,
             "the window to follow at the next poll")
    assert window.changes() == {}, "following the daemon is not a change of the user's"

    # The daemon reads an image file, not camera 0: the camera row says so.
    assert "input.png" in window.camera.currentText()
    assert window.collect()["input"] == str(home / "input.png")
    assert "camera 0" not in window.camera.currentText()
    assert "image input.png (480x270)" in window.in_use.text(), window.in_use.text()
    window.update_preview()
    wait_for(lambda: window.update_preview() and not window.preview.pixmap().isNull(),
             what="a preview frame")


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
    wait_for(lambda: tray.link.get("background.blur") == 0.9, what="the blur applied live")
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


@pytest.mark.slow
@pytest.mark.skipif(Path("/sys/module/v4l2loopback").exists(),
                    reason="needs a machine without v4l2loopback, so that the daemon fails")
def test_tray_says_why_the_daemon_it_started_stopped(qapp, home, monkeypatch):
    """15.3: no v4l2loopback here (real): the daemon exits 2; the tray shows why, in red."""
    from livebg.tray.app import Tray

    monkeypatch.setattr(autostart, "unit_installed", lambda: False)  # never the real unit
    config_file(home).write_text(CONFIG + f"input: {home / 'input.png'}\n")  # sinks: virtual
    t = Tray(poll_ms=0, show_icon=False, start_daemon=True)
    window = t.open_settings()
    try:
        assert "starting" in t.last_message and "started" not in t.last_message
        wait_for(lambda: t.refresh().problem, 240, "the daemon to stop")
        assert t.status.state == STOPPED
        assert t.status.text == "livebg stopped: no usable v4l2loopback device"
        assert "exit status 2" in t.last_error and t.status.problem == t.last_error
        assert "modprobe v4l2loopback" in t.last_error, "the fix, from the daemon's own line"
        assert "v4l2loopback" in window.message.text()
        assert "c62828" in window.message.styleSheet(), "in red"
        assert "v4l2loopback" in window.state_text.text()
        t.rebuild_menu()
        assert "v4l2loopback" in t.action("state").text()
        assert t.action("start").isEnabled(), "and it can be started again"
        assert t.link._child is None, "the child was reaped"
    finally:
        t.timer.stop()
        window.close()
        child = t.link._child
        if child is not None:
            child.terminate()
            child.wait(timeout=15)


def test_last_error_line():
    from livebg.tray.daemon_link import Exited, last_error

    text = ("20:45:53 INFO livebg.system.control: control socket: /run/x\n"
            "20:46:59 INFO livebg.engine.daemon: stopped\n"
            "livebg: error: no usable v4l2loopback device; run: sudo modprobe v4l2loopback\n")
    assert last_error(text) == "no usable v4l2loopback device; run: sudo modprobe v4l2loopback"
    logged = "12:00:00 INFO a: fine\n12:00:01 ERROR livebg.engine.daemon: stopped by an error: " \
             "camera gone\n12:00:01 INFO livebg.engine.daemon: stopped\n"
    assert last_error(logged) == "stopped by an error: camera gone"
    assert last_error("Traceback...\nKeyError: 'x'\n") == "KeyError: 'x'"
    assert Exited(2, last_error(text)).summary() == "no usable v4l2loopback device"


def test_opencv_qt_plugins_do_not_leak_into_the_tray():
    """15.4: cv2 sets QT_QPA_PLATFORM_PLUGIN_PATH to its own Qt 5; the tray's Qt 6 never looks there."""
    code = ("import os, cv2\n"
            "assert 'cv2' in os.environ.get('QT_QPA_PLATFORM_PLUGIN_PATH', ''), 'cv2 sets it'\n"
            "os.environ['QT_PLUGIN_PATH'] = '/opt/mine' + os.pathsep + os.path.dirname("
            "cv2.__file__) + '/qt/plugins'\n"
            "import livebg.tray.app\n"
            "from PySide6.QtWidgets import QApplication\n"
            "app = QApplication([])\n"
            "print('PLATFORM', app.platformName())\n"
            "print('PATH', os.environ.get('QT_QPA_PLATFORM_PLUGIN_PATH'))\n"
            "print('PLUGINS', os.environ.get('QT_PLUGIN_PATH'))\n")
    env = {**os.environ, "QT_DEBUG_PLUGINS": "1", "QT_QPA_PLATFORM": "offscreen"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "PLATFORM offscreen" in r.stdout
    assert "PATH None" in r.stdout and "PLUGINS /opt/mine" in r.stdout, r.stdout
    assert "cv2/qt" not in r.stderr, "Qt 6 searched OpenCV's plugin folder"
    assert "PySide6/Qt/plugins/platforms" in r.stderr  # the debug output is really there


def test_autostart_command_writes_and_removes_the_xdg_entry(home, capsys, monkeypatch):
    from livebg import cli

    monkeypatch.setattr(autostart, "systemd_user", lambda: False)  # no user manager here
    assert cli.main(["autostart", "status"]) == 0
    assert "start at login: off" in capsys.readouterr().out
    assert cli.main(["autostart", "on"]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "start at login: on" in out
    exec_line = autostart.desktop_path().read_text().split("Exec=")[1].splitlines()[0]
    assert exec_line.endswith(" run") and Path(exec_line.split()[0]).exists()
    assert cli.main(["autostart", "off"]) == 0
    assert "start at login: off" in capsys.readouterr().out
    assert not autostart.desktop_path().exists()


def test_autostart_systemd_installs_the_shipped_unit(home, tmp_path, monkeypatch):
    """There is no systemd user manager here: a stand-in ``systemctl`` records the calls."""
    calls = tmp_path / "calls"
    fake = tmp_path / "bin" / "systemctl"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n"
                    "case \"$*\" in *is-enabled*) echo enabled;; esac\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    assert autostart.backend() == "systemd"
    done = autostart.set_enabled(True)
    unit = autostart.unit_path()
    assert unit == home / "config" / "systemd" / "user" / "livebg.service"
    text = unit.read_text()
    assert f"wrote {unit}" in done and "systemctl --user enable livebg.service" in done
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    assert exec_start.endswith(" run") and Path(exec_start[10:].split()[0]).exists()
    assert "Restart=on-failure" in text and "RestartPreventExitStatus=2" in text
    assert calls.read_text().splitlines()[-2:] == ["--user daemon-reload",
                                                   "--user enable livebg.service"]
    assert "start at login: on" in autostart.describe()

    unit.write_text(text.replace("RestartSec=5", "RestartSec=30"))  # the user's own edit
    assert "kept your own" in autostart.set_enabled(True)
    assert "RestartSec=30" in unit.read_text()


def test_config_print_default_is_the_shipped_file(capsys):
    from livebg import cli
    from livebg.system import shipped

    assert cli.main(["config", "--print-default"]) == 0
    out = capsys.readouterr().out
    assert out == (REPO / "config" / "default.yaml").read_text()
    assert shipped.path("livebg.service").is_file() and shipped.path("livebg.desktop").is_file()


def test_wheel_ships_the_config_files():
    """pyproject force-includes config/ as livebg/share/, where livebg.system.shipped looks."""
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11 reads TOML")
    from livebg.system import shipped

    force = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"][
        "targets"]["wheel"]["force-include"]
    for name in shipped.NAMES:
        assert force[f"config/{name}"] == f"livebg/share/{name}"
    assert shipped.folders()[0] == REPO / "livebg" / "share"


TRAY_ON_X11 = """
import sys, time
from PySide6.QtCore import QPoint
from PySide6.QtWidgets import QApplication
from livebg.tray.app import Tray

app = QApplication([])
print("PLATFORM", app.platformName(), flush=True)
tray = Tray(poll_ms=500, show_icon=False, autostart_backend="xdg")


def settle(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


window = tray.open_settings()
window.move(0, 0)
deadline = time.monotonic() + 60
while not (window.update_preview() and not window.preview.pixmap().isNull()):
    assert time.monotonic() < deadline, "no preview"
    settle(0.2)
settle(1.0)
g = window.frameGeometry()
print("SETTINGS", g.x(), g.y(), g.width(), g.height(), flush=True)
sys.stdin.readline()
window.hide()
tray.rebuild_menu()
tray.menu.popup(QPoint(10, 10))
settle(1.0)
g = tray.menu.geometry()
print("MENU", g.x(), g.y(), g.width(), g.height(), flush=True)
sys.stdin.readline()
"""


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_tray_on_a_real_x_display_screenshots(daemon, home):
    """15.4 and the README's pictures: the tray's own Qt on X11 (Xvfb), real screenshots."""
    from _xvfb import ARTIFACTS, Xvfb

    link = DaemonLink()
    link.set("background.blur", 0.85)
    x = Xvfb()
    env = {**x.env(), "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.Popen([sys.executable, "-c", TRAY_ON_X11], env=env, cwd=home,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    shots = {}
    try:
        assert proc.stdout.readline().split() == ["PLATFORM", "xcb"], proc.stderr.read()
        for name in ("SETTINGS", "MENU"):
            line = proc.stdout.readline().split()
            assert line[:1] == [name], (line, proc.stderr.read()[-3000:])
            gx, gy, gw, gh = map(int, line[1:])
            screen = cv2.imread(str(x.screenshot(ARTIFACTS / f"tray-{name.lower()}-screen.png")))
            crop = screen[gy:gy + gh, gx:gx + gw]
            assert crop.shape[0] > 100 and crop.shape[1] > 100
            assert crop.std() > 20, f"the {name.lower()} is drawn, not a blank rectangle"
            shots[name] = crop
            cv2.imwrite(str(ARTIFACTS / f"tray-{name.lower()}-x11.png"), crop)
            proc.stdin.write("\n")
            proc.stdin.flush()
        assert proc.wait(timeout=60) == 0, proc.stderr.read()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        x.close()
    err = proc.stderr.read()
    assert "xcb-cursor0" not in err and "Could not load the Qt platform plugin" not in err, err


def test_tray_says_what_to_install_instead_of_aborting(monkeypatch, capsys):
    """15.4: a missing X11 library of Qt's is one line with the install command, status 2."""
    import livebg.tray
    from livebg import cli
    from livebg.system import doctor

    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setitem(doctor.QT_XCB_LIBRARIES, "libxcb-livebg-missing.so.0",
                        ("libxcb-missing0", "xcb-util-missing", "xcb-util-missing"))
    assert cli.main(["tray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "libxcb-livebg-missing.so.0" in err[0]
    assert "install" in err[0] or "pacman -S" in err[0]
    assert "libxcb-missing0" in err[0] or "xcb-util-missing" in err[0]  # by distribution
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")  # offscreen needs none of them
    assert livebg.tray.x11_problem() is None
