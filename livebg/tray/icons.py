"""The tray icon in each state: the project's SVG with a coloured badge.

running: green dot; paused: amber badge with two bars; no camera: orange
badge with a slash; error: red badge with "!"; not running: the icon greyed
out with a grey badge. Drawn with QSvgRenderer + QPainter at every size a
panel may ask for, so it stays sharp on HiDPI panels.
"""

from __future__ import annotations

from importlib import resources

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPen, QPixmap
from PySide6.QtSvg import QSvgRenderer

from livebg.tray.daemon_link import ERROR, NO_CAMERA, PAUSED, RUNNING, STOPPED

SIZES = (16, 22, 24, 32, 48, 64, 128)

BADGE = {
    RUNNING: "#22a559",
    PAUSED: "#e0a100",
    NO_CAMERA: "#e8661c",
    ERROR: "#d62d2d",
    STOPPED: "#8a8f98",
}


def svg_bytes() -> bytes:
    return resources.files("livebg.tray").joinpath("icon.svg").read_bytes()


_renderer: QSvgRenderer | None = None


def _svg() -> QSvgRenderer:
    global _renderer
    if _renderer is None:
        _renderer = QSvgRenderer(svg_bytes())
    return _renderer


def _grey(image: QImage) -> QImage:
    """``image`` in grey, a little transparent (alpha taken from the original)."""
    out = image.convertToFormat(QImage.Format.Format_Grayscale8).convertToFormat(
        QImage.Format.Format_ARGB32_Premultiplied)
    p = QPainter(out)
    p.setCompositionMode(QPainter.CompositionMode.CompositionMode_DestinationIn)
    p.drawImage(0, 0, image)
    p.setCompositionMode(QPainter.CompositionMode.CompositionMode_DestinationIn)
    p.fillRect(out.rect(), QColor(0, 0, 0, 180))
    p.end()
    return out


def _render(size: int) -> QImage:
    """The project's SVG icon on a transparent size x size image."""
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    p = QPainter(image)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    _svg().render(p, QRectF(0, 0, size, size))
    p.end()
    return image


def pixmap(state: str, size: int = 64) -> QPixmap:
    """The icon for ``state`` (one of daemon_link.STATES) as a size x size pixmap."""
    image = _render(size)
    if state == STOPPED:
        image = _grey(image)
    p = QPainter(image)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    r = size * 0.22                                   # badge radius
    c = QPointF(size - r - size * 0.02, size - r - size * 0.02)
    p.setPen(QPen(QColor("#ffffff"), max(1.0, size / 32)))
    p.setBrush(QColor(BADGE.get(state, BADGE[ERROR])))
    p.drawEllipse(c, r, r)
    pen = QPen(QColor("#ffffff"), max(1.0, size / 20))
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    p.setPen(pen)
    g = r * 0.45                                      # glyph half-size
    if state == PAUSED:
        p.drawLine(QPointF(c.x() - g * 0.45, c.y() - g), QPointF(c.x() - g * 0.45, c.y() + g))
        p.drawLine(QPointF(c.x() + g * 0.45, c.y() - g), QPointF(c.x() + g * 0.45, c.y() + g))
    elif state == NO_CAMERA:
        p.drawLine(QPointF(c.x() - g, c.y() + g), QPointF(c.x() + g, c.y() - g))
    elif state == ERROR:
        p.drawLine(QPointF(c.x(), c.y() - g), QPointF(c.x(), c.y() + g * 0.25))
        p.drawPoint(QPointF(c.x(), c.y() + g))
    elif state == STOPPED:
        p.drawLine(QPointF(c.x() - g, c.y()), QPointF(c.x() + g, c.y()))
    p.end()
    return QPixmap.fromImage(image)


_cache: dict[str, QIcon] = {}


def icon(state: str) -> QIcon:
    """A QIcon for ``state`` with a pixmap at every size in :data:`SIZES`."""
    if state not in _cache:
        ic = QIcon()
        for s in SIZES:
            pm = pixmap(state, s)
            ic.addPixmap(pm)
            ic.addPixmap(pm, QIcon.Mode.Disabled)  # the menu's (disabled) status line
        _cache[state] = ic
    return _cache[state]


def app_icon() -> QIcon:
    """The plain icon (window title bars, the about box)."""
    ic = QIcon()
    for s in SIZES:
        ic.addPixmap(QPixmap.fromImage(_render(s)))
    return ic
