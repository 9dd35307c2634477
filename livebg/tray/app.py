"""The tray: an icon that shows the daemon's state and a menu to control it.

:class:`Tray` owns the icon, the menu and the settings window. Every change
goes the same way (:meth:`Tray.apply`): saved to the user's ``config.yaml``
(validated, atomic, comments kept; see :mod:`livebg.tray.persist`), then set
live in the running daemon through :mod:`livebg.tray.daemon_link`. The state
is polled every two seconds on a fresh connection, so a daemon that restarts
is picked up again without the tray doing anything special.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QActionGroup, QDesktopServices
from PySide6.QtWidgets import QApplication, QFileDialog, QMenu, QSystemTrayIcon

from livebg import config as config_mod
from livebg.config import Config
from livebg.tray import icons, persist
from livebg.tray.choices import (background_files, backgrounds_dir, choice_labels,  # noqa: F401
                                 choice_name, field_choices, file_filter, media_kind)
from livebg.tray.daemon_link import (ERROR, PAUSED, STOPPED, DaemonLink, LinkError, NotRunning,
                                     Status, camera_choices)

log = logging.getLogger(__name__)

BLUR_PRESETS = (("Blur (light)", 0.3), ("Blur (strong)", 0.85))
POLL_MS = 2000


class Tray(QObject):
    """The tray's state and actions (usable without a system tray, e.g. in tests).

    Args:
        link: how to reach the daemon (default: the user's control socket).
        config_path: the file changes are saved to (default: the user's).
        poll_ms: how often the state is refreshed (0: only on demand).
        start_daemon: start ``livebg run`` when no daemon answers at start-up.
        show_icon: put an icon in the system tray when there is one.
        autostart_backend: "systemd" or "xdg" for "start at login" (None: detect).
    """

    state_changed = Signal(object)      # Status
    message = Signal(str, bool)         # text, is an error

    def __init__(self, link: DaemonLink | None = None, *, config_path: Path | None = None,
                 poll_ms: int = POLL_MS, start_daemon: bool = False, show_icon: bool = True,
                 autostart_backend: str | None = None):
        super().__init__()
        self.autostart_backend = autostart_backend
        self.link = link or DaemonLink()
        self.config_path = Path(config_path) if config_path else None
        self.status = Status(STOPPED, "livebg is not running")
        self.last_message = ""
        self.last_error = ""
        self._pid = None
        self._settings = None
        self._exited = None      # daemon_link.Exited: the daemon we started ended, and why
        self._starting = False   # we started one that has not finished opening its outputs
        self.menu = QMenu()
        self.menu.aboutToShow.connect(self.rebuild_menu)
        self.tray_icon: QSystemTrayIcon | None = None
        if show_icon and QSystemTrayIcon.isSystemTrayAvailable():
            self.tray_icon = QSystemTrayIcon(icons.icon(STOPPED))
            self.tray_icon.setContextMenu(self.menu)
            self.tray_icon.activated.connect(self._activated)
            self.tray_icon.show()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.refresh)
        if start_daemon and not self.link.running():
            self.start_daemon()
        self.refresh()
        self.rebuild_menu()
        if poll_ms:
            self.timer.start(poll_ms)

    # ------------------------------------------------------------ state

    @property
    def path(self) -> Path:
        return self.config_path or config_mod.user_config_path()

    def refresh(self) -> Status:
        """Ask the daemon for its state; update the icon and tooltip.

        When a daemon this tray started has ended with an error, the state
        says why (its last error line) and the user is told once, in red.
        """
        status = self.link.status()
        ended = self.link.exited() if status.state in (STOPPED, ERROR) else None
        if ended is not None:
            self._exited, self._starting = ended, False
            self.notify(ended.message(), error=True)
        if status.state in (STOPPED, ERROR) and self._exited is not None:
            status = Status(STOPPED, f"livebg stopped: {self._exited.summary()}",
                            problem=self._exited.message())
        elif status.state == STOPPED and self._starting:
            status = Status(STOPPED, "starting livebg…")
        elif status.state != STOPPED:
            self._exited = None
            if self._starting and status.raw.get("sinks"):
                self._starting = False
                self.notify(f"livebg is running ({', '.join(status.raw['sinks'])})")
        pid = status.raw.get("pid")
        if pid and self._pid and pid != self._pid:
            log.info("livebg restarted (pid %s, was %s)", pid, self._pid)
        if status.state != self.status.state:
            log.info("livebg: %s", status.text)
        self._pid = pid or self._pid
        self.status = status
        if self.tray_icon is not None:
            self.tray_icon.setIcon(icons.icon(ERROR if status.problem else status.state))
            self.tray_icon.setToolTip(f"livebg - {status.text}")
        self.state_changed.emit(status)
        return status

    def values(self, *, fallback: bool = True) -> Config | None:
        """The settings to show: the running daemon's, else the file's, else defaults.

        With ``fallback`` False, None when a daemon runs but did not answer
        (busy, or refused): the caller keeps what it shows rather than show
        the file's settings, which may not be what runs.
        """
        try:
            data = self.link.get()
            flat = {}
            for section, fields in data.items():
                if isinstance(fields, dict):
                    flat.update({f"{section}.{k}": v for k, v in fields.items()})
                else:
                    flat[section] = fields
            # All at once: keys that only make sense together (mode image + its file).
            return config_mod.set_values(Config(), flat, source="daemon")
        except NotRunning:
            pass
        except (LinkError, config_mod.ConfigError, AttributeError) as e:
            log.debug("the daemon's settings are not usable here: %s", e)
            if not fallback:
                return None
        cfg, _problem = persist.load(self.path)
        return cfg

    def config_problem(self) -> str | None:
        """Why the configuration file cannot be used, or None."""
        return persist.load(self.path)[1]

    def notify(self, text: str, error: bool = False) -> None:
        """Tell the user (tray bubble, settings window, log)."""
        self.last_message = text
        if error:
            self.last_error = text
        (log.error if error else log.info)("%s", text)
        if self.tray_icon is not None and (error or self._settings is None
                                           or not self._settings.isVisible()):
            self.tray_icon.showMessage(
                "livebg", text, QSystemTrayIcon.MessageIcon.Warning if error
                else QSystemTrayIcon.MessageIcon.Information, 6000 if error else 2500)
        self.message.emit(text, error)

    # ------------------------------------------------------------ actions

    def apply(self, changes: dict[str, Any]) -> bool:
        """Save ``changes`` to config.yaml and set them live; True when both worked.

        A value that livebg.config rejects changes nothing. A file that does
        not parse is left as it is (the change still applies live, and the
        message says it was not saved).
        """
        if not changes:
            return True
        saved, save_error = True, ""
        try:
            persist.save(changes, self.path)
        except persist.PersistError as e:
            saved, save_error = False, str(e)
            if not e.parse:
                self.notify(save_error, error=True)
                return False
        live_error = ""
        try:
            self._set_live(changes)
            live = True
        except NotRunning:
            live = False
        except LinkError as e:
            live, live_error = False, str(e)
        self.refresh()
        if not saved:
            self.notify(f"{save_error}" + ("; applied until livebg restarts" if live else ""),
                        error=True)
            return False
        if live_error:
            self.notify(f"saved, but livebg refused it: {live_error}", error=True)
            return False
        self.notify("saved and applied" if live else
                    "saved; livebg is not running and will use it when it starts")
        return True

    def _set_live(self, changes: dict[str, Any]) -> None:
        """``set`` each key; a key refused only because of another's order is retried."""
        pending = dict(changes)
        if "background.image" in pending:  # the file before the mode that needs it
            pending = {"background.image": pending.pop("background.image"), **pending}
        for _attempt in range(2):
            failed: dict[str, Any] = {}
            error = None
            for key, value in pending.items():
                try:
                    self.link.set(key, value)
                except NotRunning:
                    raise
                except LinkError as e:
                    failed[key], error = value, e
            if not failed:
                return
            pending = failed
        raise error  # type: ignore[misc]

    def set_paused(self, paused: bool) -> None:
        try:
            if paused:
                self.link.pause()
            else:
                self.link.resume()
        except LinkError as e:
            self.notify(str(e), error=True)
        self.refresh()

    def toggle(self) -> None:
        self.set_paused(self.status.state != PAUSED)

    def start_daemon(self) -> bool:
        """Start ``livebg run`` (or the user unit) without waiting for it.

        It takes seconds to open the net and its outputs and may still fail
        then (no v4l2loopback): :meth:`refresh` says "running" once it has
        opened its outputs, or why it stopped.
        """
        self._exited = None
        try:
            self.notify(self.link.start(wait=0) + "…")
            self._starting = True
            return True
        except (LinkError, OSError) as e:
            self.notify(f"cannot start livebg: {e}", error=True)
            return False
        finally:
            self.refresh()

    def choose_file(self) -> None:
        start = str(backgrounds_dir() if backgrounds_dir().is_dir() else Path.home())
        name, _ = QFileDialog.getOpenFileName(None, "Background image or video", start,
                                              file_filter())
        if name:
            self.use_file(name)

    def use_file(self, name: str | Path) -> bool:
        kind = media_kind(name)
        if kind is None:
            self.notify(f"{name}: not an image or video file livebg can read", error=True)
            return False
        return self.apply({"background.mode": kind, "background.image": str(name)})

    def open_settings(self):
        from livebg.tray.settings import SettingsWindow

        if self._settings is None:
            self._settings = SettingsWindow(self, autostart_backend=self.autostart_backend)
        self._settings.load()
        self._settings.show()
        self._settings.raise_()
        self._settings.activateWindow()
        return self._settings

    def quit(self) -> None:
        self.timer.stop()
        if self.tray_icon is not None:
            self.tray_icon.hide()
        QApplication.quit()

    def _activated(self, reason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            self.open_settings()
        elif reason == QSystemTrayIcon.ActivationReason.MiddleClick:
            self.toggle()

    # ------------------------------------------------------------ menu

    def _add(self, menu: QMenu, text: str, slot=None, *, name: str = "", checked=None,
             group: QActionGroup | None = None, enabled: bool = True) -> QAction:
        action = QAction(text, menu)
        action.setObjectName(name or text)
        if checked is not None:
            action.setCheckable(True)
            action.setChecked(bool(checked))
        if group is not None:
            group.addAction(action)
        if slot is not None:
            action.triggered.connect(lambda _=False: slot())
        action.setEnabled(enabled)
        menu.addAction(action)
        return action

    def rebuild_menu(self) -> None:
        """(Re)build the menu from the current state and settings."""
        m = self.menu
        m.clear()
        st = self.status
        cfg = self.values()
        bg = cfg.background
        state = self._add(m, f"livebg: {_short(st.text)}", name="state", enabled=False)
        state.setIcon(icons.icon(ERROR if st.problem else st.state))
        if st.problem:
            state.setToolTip(st.problem)
            m.setToolTipsVisible(True)
        problem = self.config_problem()
        if problem:
            a = self._add(m, "⚠ " + _short(problem.replace(str(self.path), self.path.name)),
                          name="problem", enabled=False)
            a.setToolTip(problem)
            m.setToolTipsVisible(True)
        if st.state == STOPPED:
            self._add(m, "Start livebg", self.start_daemon, name="start")
        else:
            self._add(m, "Effect on", self.toggle, name="effect",
                      checked=st.state != PAUSED)
        m.addSeparator()

        self._background_section(m, bg)
        m.addSeparator()

        cam = m.addMenu("Camera")
        cam.setObjectName("camera")
        cams = camera_choices()
        cam_group = QActionGroup(cam)
        using_camera = cfg.input == "camera" or cfg.input.startswith(("camera:", "/dev/video"))
        for value, label in cams:
            on = using_camera and _same_camera(cfg.camera.device, value)
            self._add(cam, label, lambda v=value: self.apply({"input": "camera",
                                                                "camera.device": v}),
                      name=f"camera:{value}", checked=on, group=cam_group)
        if not cams:
            self._add(cam, "No camera found", name="camera:none", enabled=False)
        if not using_camera:
            self._add(cam, f"Input: {_short(cfg.input, 40)}", name="camera:input", enabled=False)

        q = m.addMenu("Quality")
        q.setObjectName("quality")
        q.addSection("Network")
        net_group = QActionGroup(q)
        for name in field_choices("model.name"):
            self._add(q, name.capitalize(), lambda v=name: self.apply({"model.name": v}),
                      name=f"model:{name}", checked=cfg.model.name == name, group=net_group)
        q.addSection("Refinement")
        ref_group = QActionGroup(q)
        for mode, about in choice_labels("refine.mode").items():
            a = self._add(q, choice_name(mode), lambda v=mode: self.apply({"refine.mode": v}),
                          name=f"refine:{mode}", checked=cfg.refine.mode == mode,
                          group=ref_group)
            a.setToolTip(about)
        q.addSection("People")
        subject_group = QActionGroup(q)
        for mode, label in (("main", "Main person only"), ("all", "Everyone")):
            self._add(q, label, lambda v=mode: self.apply({"subject": v}), name=f"subject:{mode}",
                      checked=cfg.subject == mode, group=subject_group)
        q.setToolTipsVisible(True)
        m.addSeparator()
        self._add(m, "Settings…", self.open_settings, name="settings")
        self._add(m, "Quit tray", self.quit, name="quit")

    def _background_section(self, m: QMenu, bg) -> None:
        """The menu's background choices: blur presets, the backgrounds folder, colour, none."""
        m.addSection("Background")
        group = QActionGroup(m)
        for text, value in BLUR_PRESETS:
            on = bg.mode == "blur" and min(BLUR_PRESETS, key=lambda p: abs(p[1] - bg.blur))[1] \
                == value
            self._add(m, text, lambda v=value: self.apply({"background.mode": "blur",
                                                             "background.blur": v}),
                      name=f"blur:{value}", checked=on, group=group)
        for path in background_files():
            kind = media_kind(path)
            on = bg.mode == kind and Path(bg.image).expanduser() == path
            self._add(m, path.stem.replace("_", " ").replace("-", " ").capitalize(),
                      lambda p=path: self.use_file(p), name=f"file:{path.name}", checked=on,
                      group=group)
        if bg.mode in ("image", "video") and bg.image and \
                Path(bg.image).expanduser().parent != backgrounds_dir():
            self._add(m, Path(bg.image).name, lambda: None, name="file:current", checked=True,
                      group=group)
        self._add(m, f"Colour ({bg.color})", lambda: self.apply({"background.mode": "color"}),
                  name="color", checked=bg.mode == "color", group=group)
        self._add(m, "None (camera as is)", lambda: self.apply({"background.mode": "none"}),
                  name="none", checked=bg.mode == "none", group=group)
        self._add(m, "Choose image or video…", self.choose_file, name="choose")
        self._add(m, "Open backgrounds folder", self._open_backgrounds, name="folder")

    def action(self, name: str) -> QAction:
        """The menu action with ``name`` (its objectName), searching submenus too."""
        def walk(menu: QMenu):
            for a in menu.actions():
                if a.objectName() == name:
                    return a
                if a.menu() is not None:
                    found = walk(a.menu())
                    if found is not None:
                        return found
            return None

        found = walk(self.menu)
        if found is None:
            raise KeyError(f"no menu action {name!r}")
        return found

    def _open_backgrounds(self) -> None:
        d = backgrounds_dir()
        d.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(d)))


def _same_camera(configured: str, value: str) -> bool:
    if configured == value:
        return True
    return configured.isdigit() and value == f"/dev/video{configured}"


def _short(text: str, n: int = 70) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def main(*, start_daemon: bool = True) -> int:
    """``livebg tray``: run the tray until Quit."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s", datefmt="%H:%M:%S")
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl+C in a terminal quits at once
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("livebg")
    app.setDesktopFileName("livebg")
    app.setWindowIcon(icons.app_icon())
    tray = Tray(start_daemon=start_daemon)
    if tray.tray_icon is None:
        log.warning("no system tray on this desktop: showing the settings window instead")
        tray.open_settings()
        app.setQuitOnLastWindowClosed(True)
    else:
        app.setQuitOnLastWindowClosed(False)
    return app.exec()
