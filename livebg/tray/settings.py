"""The settings window: every option the menu has, plus size, rate, blur and login.

Every change applies at once, as desktop settings do: a choice as soon as it
is made, a slider or a number once it has rested for :data:`SETTLE_MS`, a
typed file or camera when the field is left (Enter or Tab). Each goes to
:meth:`livebg.tray.app.Tray.apply` (saved to config.yaml, then set live);
the line at the bottom says what happened, in red when something was not
saved or not applied. The window follows the daemon: a change made from the
menu, ``livebg ctl`` or the file shows up here at the next poll, and the
camera row says what the daemon really reads (the sample, a file, which
camera). There is no Apply button.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Protocol

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor, QPixmap
from PySide6.QtWidgets import (QCheckBox, QColorDialog, QComboBox, QFileDialog, QFormLayout,
                               QGroupBox, QHBoxLayout, QLabel, QLineEdit, QPushButton,
                               QSlider, QSpinBox, QVBoxLayout, QWidget)

from livebg.config import Config
from livebg.system import autostart
from livebg.tray import icons
from livebg.tray.choices import (backgrounds_dir, choice_labels, choice_name, field_choices,
                                 file_filter, media_kind)
from livebg.tray.daemon_link import STOPPED, LinkError, Status, camera_choices

log = logging.getLogger(__name__)

MODES = (("blur", "Blur"), ("image", "Picture"), ("video", "Video"), ("color", "Colour"),
         ("transparent", "Transparent (overlay)"), ("none", "None (camera as is)"))
SIZES = ((640, 480), (960, 540), (1280, 720), (1920, 1080))
PREVIEW_W, PREVIEW_H = 320, 180
PREVIEW_MS = 1500
# A slider or spin box applies this long after it stops moving: one change per
# gesture, not one per pixel of a drag (each change rewrites config.yaml).
SETTLE_MS = 350
INPUT_ITEM = "input:"  # camera combo data prefix: the daemon reads its --input, not a camera


class TrayLike(Protocol):
    """What the window needs of its tray (:class:`livebg.tray.app.Tray`, which imports us).

    ``state_changed`` and ``message`` are Qt signals carrying a
    :class:`~livebg.tray.daemon_link.Status` and a one-line ``str``.
    """

    status: Status
    link: Any           # a DaemonLink: snapshot() -> PNG bytes
    state_changed: Any
    message: Any        # (text, is an error)

    def values(self, *, fallback: bool = True) -> Config | None: ...
    def config_problem(self) -> str | None: ...
    def apply(self, changes: dict[str, Any]) -> bool: ...
    def start_daemon(self) -> bool: ...
    def set_paused(self, paused: bool) -> None: ...


def is_camera_input(spec: str) -> bool:
    """The daemon's ``input`` is a camera (not the sample or a file)."""
    return spec == "camera" or spec.startswith(("camera:", "/dev/video"))


def _select(combo: QComboBox, value: Any) -> None:
    i = combo.findData(value)
    if i < 0:
        combo.addItem(str(value), value)
        i = combo.count() - 1
    combo.setCurrentIndex(i)


class SettingsWindow(QWidget):
    """The "livebg settings" window of a :class:`~livebg.tray.app.Tray`."""

    def __init__(self, tray: TrayLike, *, autostart_backend: str | None = None):
        super().__init__()
        self.tray = tray
        self.autostart_backend = autostart_backend
        self._loaded: dict[str, Any] = {}
        self._autostart_loaded = False
        self._loading = False       # the form is being filled in: its signals change nothing
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(SETTLE_MS)
        self._settle.timeout.connect(self.apply)
        self.setWindowTitle("livebg settings")
        self.setWindowIcon(icons.app_icon())
        self._build_status()
        bg = self._build_background()
        cam = self._build_camera()
        quality = self._build_quality()

        # -- login, message, buttons
        self.login = QCheckBox("Start livebg at login")
        self.message = QLabel()
        self.message.setObjectName("message")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QPushButton("Close")
        close.clicked.connect(self.close)

        left = QVBoxLayout()
        left.addWidget(bg)
        left.addWidget(cam)
        left.addWidget(quality)
        left.addWidget(self.login)
        right = QVBoxLayout()
        head = QHBoxLayout()
        head.addWidget(self.state_icon)
        head.addWidget(self.state_text, 1)
        right.addLayout(head)
        right.addWidget(self.preview)
        self.pause_button = QPushButton()
        self.pause_button.clicked.connect(self._pause_clicked)
        right.addWidget(self.pause_button)
        right.addStretch(1)
        body = QHBoxLayout()
        body.addLayout(left, 1)
        body.addLayout(right)
        buttons = QHBoxLayout()
        buttons.addWidget(self.message, 1)
        buttons.addWidget(close)
        outer = QVBoxLayout(self)
        outer.addLayout(body)
        outer.addLayout(buttons)

        self.preview_timer = QTimer(self)
        self.preview_timer.timeout.connect(self.update_preview)
        tray.state_changed.connect(self.show_state)
        tray.message.connect(self.show_message)
        self._connect_changes()
        self.show_state(tray.status)

    def _build_status(self) -> None:
        """The state line and the preview (the right-hand side)."""
        self.state_icon = QLabel()
        self.state_text = QLabel()
        self.state_text.setWordWrap(True)
        self.preview = QLabel("no preview")
        self.preview.setObjectName("preview")
        self.preview.setFixedSize(PREVIEW_W, PREVIEW_H)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setStyleSheet("QLabel#preview { background: #202428; color: #9aa0a6; "
                                   "border-radius: 4px; }")

    def _build_background(self) -> QGroupBox:
        """The Background group: mode, blur, file, fit, colour."""
        self.mode = QComboBox()
        for value, label in MODES:
            self.mode.addItem(label, value)
        self.blur = QSlider(Qt.Orientation.Horizontal)
        self.blur.setRange(0, 100)
        self.blur.setTickInterval(25)
        self.blur.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.blur_value = QLabel()
        self.blur_value.setMinimumWidth(32)
        self.blur.valueChanged.connect(lambda v: self.blur_value.setText(f"{v / 100:.2f}"))
        self.image = QLineEdit()
        self.image.setPlaceholderText("image or video file")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.color = QPushButton()
        self.color.setObjectName("color")
        self.color.clicked.connect(self._pick_color)
        self._color = "#00b140"
        self.fit = QComboBox()
        self.fit.addItem("Cover (crop)", "cover")
        self.fit.addItem("Fit (pad with colour)", "fit")
        self.mode.currentIndexChanged.connect(self._enable)

        bg = QGroupBox("Background")
        f = QFormLayout(bg)
        f.addRow("Replace with", self.mode)
        row = QHBoxLayout()
        row.addWidget(QLabel("light"))
        row.addWidget(self.blur, 1)
        row.addWidget(QLabel("strong"))
        row.addWidget(self.blur_value)
        f.addRow("Blur strength", row)
        row = QHBoxLayout()
        row.addWidget(self.image, 1)
        row.addWidget(browse)
        f.addRow("File", row)
        f.addRow("Picture fills", self.fit)
        f.addRow("Colour", self.color)
        return bg

    def _build_camera(self) -> QGroupBox:
        """The Camera group: device, what is in use, size and rate."""
        self.camera = QComboBox()
        self.camera.setEditable(True)
        self.camera.setToolTip("a camera index (0, 1, ...) or a device such as /dev/video0")
        self.size = QComboBox()
        self.fps = QSpinBox()
        self.fps.setRange(1, 240)
        self.fps.setSuffix(" fps")
        self.in_use = QLabel()
        self.in_use.setObjectName("in_use")
        self.in_use.setWordWrap(True)
        self.in_use.setStyleSheet("QLabel#in_use { color: palette(mid); }")
        cam = QGroupBox("Camera")
        f = QFormLayout(cam)
        f.addRow("Device", self.camera)
        f.addRow("In use", self.in_use)
        row = QHBoxLayout()
        row.addWidget(self.size, 1)
        row.addWidget(self.fps)
        f.addRow("Resolution", row)
        return cam

    def _build_quality(self) -> QGroupBox:
        """The Quality group: net and refinement."""
        self.net = QComboBox()
        labels = {"auto": "Auto (by frame shape)", "landscape": "Landscape (256x144, faster)",
                  "square": "Square (256x256; wide frames get landscape)",
                  "livebg": "livebg (256x144, trained here)"}
        for name in field_choices("model.name"):
            self.net.addItem(labels.get(name, name), name)
        self.refine = QComboBox()
        for mode, about in choice_labels("refine.mode").items():
            self.refine.addItem(f"{choice_name(mode)} ({about})" if about else choice_name(mode),
                                mode)
        quality = QGroupBox("Quality")
        f = QFormLayout(quality)
        f.addRow("Network", self.net)
        f.addRow("Refinement", self.refine)
        return quality

    def _connect_changes(self) -> None:
        """Every widget applies its change itself (see the module's docstring)."""
        now, settle = self.apply, self._settle_later
        for combo in (self.mode, self.fit, self.size, self.net, self.refine, self.camera):
            combo.currentIndexChanged.connect(lambda _i: now())
        self.camera.lineEdit().editingFinished.connect(now)
        self.image.editingFinished.connect(now)
        self.blur.valueChanged.connect(lambda _v: settle())
        self.blur.sliderReleased.connect(now)
        self.fps.valueChanged.connect(lambda _v: settle())
        self.login.toggled.connect(lambda _on: self.apply_login())

    def _settle_later(self) -> None:
        if not self._loading:
            self._settle.start()

    # ------------------------------------------------------------ values

    def load(self) -> None:
        """Fill the whole form from the daemon (or the file), the login switch included."""
        self._loading = True
        try:
            self.size.clear()
            for w, h in SIZES:
                self.size.addItem(f"{w} x {h}", f"{w}x{h}")
            self._fill(self.tray.values())
            self._autostart_loaded = autostart.is_enabled(self.autostart_backend)
            self.login.setChecked(self._autostart_loaded)
        finally:
            self._loading = False
        self._loaded = self.collect()
        use = self.autostart_backend or autostart.backend()
        self.login.setToolTip("systemctl --user enable livebg.service" if use == "systemd"
                              else f"writes {autostart.desktop_path()}")
        problem = self.tray.config_problem()
        if problem:
            self.show_message(f"{problem} - changes apply until livebg restarts, but are not "
                              "saved", True)
        self._enable()

    def sync(self) -> bool:
        """Follow the daemon: show what it runs now, unless the user is changing something.

        Returns True when the form changed. Skipped while a slider or number
        has not settled, a typed file or camera has not been left yet, or a
        picture mode waits for its file.
        """
        waiting_for_file = self.mode.currentData() in ("image", "video") and \
            not self.image.text().strip()
        if self._settle.isActive() or self.blur.isSliderDown() or self.image.isModified() \
                or self.camera.lineEdit().hasFocus() or waiting_for_file:
            return False
        cfg = self.tray.values(fallback=False)
        if cfg is None:
            return False
        before = self.collect()
        self._loading = True
        try:
            self._fill(cfg)
        finally:
            self._loading = False
        self._loaded = self.collect()
        self._enable()
        return self._loaded != before

    def _fill(self, cfg) -> None:
        bg = cfg.background
        _select(self.mode, bg.mode)
        self.blur.setValue(round(bg.blur * 100))
        self.blur_value.setText(f"{bg.blur:.2f}")
        self.image.setText(bg.image)
        self.image.setModified(False)
        _select(self.fit, bg.fit)
        self._set_color(bg.color)
        self.camera.clear()
        for value, label in camera_choices():
            self.camera.addItem(label, value)
        if is_camera_input(cfg.input):
            _select(self.camera, cfg.camera.device)
        else:
            self.camera.insertItem(0, _input_label(cfg.input), INPUT_ITEM + cfg.input)
            self.camera.setItemData(0, cfg.input, Qt.ItemDataRole.ToolTipRole)
            self.camera.setCurrentIndex(0)
        _select(self.size, f"{cfg.camera.width}x{cfg.camera.height}")
        self.fps.setValue(cfg.camera.fps)
        _select(self.net, cfg.model.name)
        _select(self.refine, cfg.refine.mode)

    def collect(self) -> dict[str, Any]:
        """The form as dotted configuration keys."""
        size = (self.size.currentData() or "1280x720").split("x")
        text = self.camera.currentText().strip()
        data = self.camera.currentData() if self.camera.findText(text) >= 0 else text
        out = {
            "background.mode": self.mode.currentData(),
            "background.blur": round(self.blur.value() / 100, 2),
            "background.image": self.image.text().strip(),
            "background.fit": self.fit.currentData(),
            "background.color": self._color,
            "camera.width": int(size[0]),
            "camera.height": int(size[1]),
            "camera.fps": self.fps.value(),
            "model.name": self.net.currentData(),
            "refine.mode": self.refine.currentData(),
        }
        if isinstance(data, str) and data.startswith(INPUT_ITEM):
            out["input"] = data[len(INPUT_ITEM):]
        else:
            out["input"] = "camera"
            out["camera.device"] = str(data or "0")
        return out

    def changes(self) -> dict[str, Any]:
        now = self.collect()
        return {k: v for k, v in now.items() if self._loaded.get(k) != v}

    def apply(self) -> bool:
        """Save and apply what changed now (the widgets call this themselves).

        True when all of it worked (or nothing changed). A picture or video
        mode waits for its file.
        """
        if self._loading:
            return True
        self._settle.stop()
        self._enable()
        changes = self.changes()
        if not changes:
            return True
        mode = self.mode.currentData()
        if mode in ("image", "video") and not self.image.text().strip():
            self.show_message(f"choose a {'picture' if mode == 'image' else 'video'} file "
                              "(Browse…) to use it", False)
            return True
        ok = self.tray.apply(changes)
        if ok:
            self._loaded.update(changes)
        return ok

    def apply_login(self) -> bool:
        """Switch "start at login" now; True when it worked."""
        if self._loading or self.login.isChecked() == self._autostart_loaded:
            return True
        try:
            done = autostart.set_enabled(self.login.isChecked(), self.autostart_backend)
        except autostart.AutostartError as e:
            self.show_message(str(e), True)
            self._loading = True
            self.login.setChecked(self._autostart_loaded)
            self._loading = False
            return False
        self._autostart_loaded = self.login.isChecked()
        log.info("start at login: %s", done)
        self.show_message(done, False)
        return True

    # ------------------------------------------------------------ view

    def show_state(self, status: Status) -> None:
        """The daemon's state (every poll): the header, the camera in use, and the form."""
        from livebg.tray.daemon_link import ERROR

        self.state_icon.setPixmap(icons.pixmap(ERROR if status.problem else status.state, 32))
        self.state_text.setText(f"<b>livebg</b><br>{status.text}")
        self.pause_button.setText("Start livebg" if status.state == STOPPED else
                                  "Resume" if status.paused else "Pause")
        if status.problem:
            self.show_message(status.problem, True)
        raw = status.raw
        cam = raw.get("camera") or {}
        if status.state == STOPPED:
            self.in_use.setText("livebg is not running")
        else:
            spec = raw.get("input") or ""
            text = cam.get("describe") or _input_label(spec)
            text += f" - {cam['problem']}" if cam.get("problem") else ""
            self.in_use.setToolTip(text)
            self.in_use.setText(text if is_camera_input(spec) else _short_paths(text, spec))
        if self.isVisible():
            self.sync()

    def show_message(self, text: str, error: bool) -> None:
        self.message.setStyleSheet("color: #c62828;" if error else "color: #2e7d32;")
        self.message.setText(text)
        if self.isVisible():  # a long message grows the window instead of squashing the form
            self.layout().activate()
            need = self.layout().totalHeightForWidth(self.width())
            if need > self.height():
                self.resize(self.width(), need)

    def update_preview(self) -> bool:
        """Fetch the daemon's current output; False (and a note) when there is none."""
        if self.tray.status.state == STOPPED:
            self.preview.setPixmap(QPixmap())
            self.preview.setText("livebg is not running")
            return False
        try:
            png = self.tray.link.snapshot()
        except LinkError as e:
            self.preview.setPixmap(QPixmap())
            self.preview.setText(f"no preview\n{e}")
            return False
        pm = QPixmap()
        pm.loadFromData(png, "PNG")
        self.preview.setPixmap(pm.scaled(PREVIEW_W, PREVIEW_H,
                                         Qt.AspectRatioMode.KeepAspectRatio,
                                         Qt.TransformationMode.SmoothTransformation))
        return True

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self.update_preview()
        self.preview_timer.start(PREVIEW_MS)

    def hideEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.preview_timer.stop()
        super().hideEvent(event)

    def _enable(self) -> None:
        mode = self.mode.currentData()
        self.blur.setEnabled(mode == "blur")
        self.image.setEnabled(mode in ("image", "video"))
        self.fit.setEnabled(mode in ("image", "video"))
        self.color.setEnabled(mode == "color" or (mode in ("image", "video")
                                                  and self.fit.currentData() == "fit"))

    def _set_color(self, value: str) -> None:
        self._color = value
        self.color.setText(value)
        text = "#000000" if QColor(value).lightness() > 140 else "#ffffff"
        self.color.setStyleSheet(f"QPushButton#color {{ background: {value}; color: {text}; }}"
                                 "QPushButton#color:disabled { background: palette(button); "
                                 "color: palette(mid); }")

    def _pick_color(self) -> None:
        c = QColorDialog.getColor(QColor(self._color), self, "Background colour")
        if c.isValid():
            self._set_color(c.name())
            self.apply()

    def _browse(self) -> None:
        start = self.image.text() or str(backgrounds_dir())
        name, _ = QFileDialog.getOpenFileName(self, "Background image or video", start,
                                              file_filter())
        if name:
            self.image.setText(name)
            kind = media_kind(name)
            if kind:
                _select(self.mode, kind)
            self.apply()

    def _pause_clicked(self) -> None:
        if self.tray.status.state == STOPPED:
            self.tray.start_daemon()
        else:
            self.tray.set_paused(not self.tray.status.paused)


def _input_label(spec: str) -> str:
    """How the camera row names a daemon input that is not a camera (a file by its name)."""
    if spec == "sample":
        return "the built-in sample (input: sample)"
    if not spec:
        return "unknown"
    return f"{Path(spec).name} (input file)"


def _short_paths(text: str, spec: str) -> str:
    """``text`` with the folder of the input file ``spec`` left out (the tooltip has it)."""
    folder = str(Path(spec).expanduser().parent)
    return text.replace(folder + os.sep, "") if folder not in ("", ".") else text
