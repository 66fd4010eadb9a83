"""The tray icons, from resources/icons, with the render progress drawn as a ring."""

from __future__ import annotations

from importlib import resources

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap

from worker_app.tray.status import ICON_STATES

_cache: dict[tuple[str, int | None], QIcon] = {}


def _files(state: str) -> list[str]:
    folder = resources.files("worker_app.resources").joinpath("icons")
    return [str(folder.joinpath(f"{state}-{size}.png")) for size in (16, 32, 64)]


def icon(state: str, percent: float | None = None) -> QIcon:
    """The icon for a state; for rendering with a percent, a ring fills clockwise (in 5 % steps)."""
    assert state in ICON_STATES, state
    step = None if percent is None or state != "rendering" else int(max(0, min(100, percent)) // 5 * 5)
    key = (state, step)
    if key not in _cache:
        result = QIcon()
        for path in _files(state):
            pixmap = QPixmap(path)
            if step is not None:
                pixmap = _with_ring(pixmap, step)
            result.addPixmap(pixmap)
        _cache[key] = result
    return _cache[key]


def _with_ring(base: QPixmap, percent: int) -> QPixmap:
    pixmap = QPixmap(base)
    size = pixmap.width()
    width = max(1.5, size / 10)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.Antialiasing)
    rect = QRectF(width / 2, width / 2, size - width, size - width)
    painter.setPen(QPen(QColor(255, 255, 255, 200), width, Qt.SolidLine, Qt.FlatCap))
    painter.drawArc(rect, 90 * 16, -int(percent / 100 * 360 * 16))
    painter.end()
    return pixmap
