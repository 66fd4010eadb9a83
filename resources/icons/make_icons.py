"""Writes the tray icons: one SVG per state and PNGs at 16, 32 and 64 px.

    python resources/icons/make_icons.py

Each icon is a coloured disc with a thin dark rim (so it reads on light and dark task bars) and a white
house, the "home" render node, with a mark for the state.
"""

import sys
from pathlib import Path

HERE = Path(__file__).parent

HOUSE = "M16 7 L26 15 L23 15 L23 25 L9 25 L9 15 L6 15 Z"
STATES = {
    # state: (disc colour, extra mark drawn on top of the house, in the house's own colour scheme)
    "waiting": ("#2e9d57", '<circle cx="16" cy="19.5" r="2.6" fill="#2e9d57"/>'),
    "rendering": ("#2f6fd6", '<path d="M13.5 16.5 L20 19.5 L13.5 22.5 Z" fill="#2f6fd6"/>'),
    "paused": ("#d99211", '<rect x="12.6" y="16" width="2.6" height="7" fill="#d99211"/>'
                          '<rect x="16.8" y="16" width="2.6" height="7" fill="#d99211"/>'),
    "offline": ("#7a7f87", '<path d="M12.5 17 L19.5 23 M19.5 17 L12.5 23" stroke="#7a7f87" '
                           'stroke-width="2.2" stroke-linecap="round"/>'),
    "error": ("#d13b3b", '<rect x="14.8" y="15.5" width="2.4" height="5" fill="#d13b3b"/>'
                         '<rect x="14.8" y="21.6" width="2.4" height="2.2" fill="#d13b3b"/>'),
}


def svg(colour: str, mark: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32" viewBox="0 0 32 32">'
            f'<circle cx="16" cy="16" r="15" fill="{colour}" stroke="#000000" stroke-opacity="0.45" '
            f'stroke-width="1.2"/>'
            f'<path d="{HOUSE}" fill="#ffffff"/>{mark}</svg>\n')


def main() -> int:
    from PySide6.QtCore import QByteArray, Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1] + ["-platform", "offscreen"])
    for state, (colour, mark) in STATES.items():
        text = svg(colour, mark)
        (HERE / f"{state}.svg").write_text(text)
        renderer = QSvgRenderer(QByteArray(text.encode()))
        for size in (16, 32, 64):
            image = QImage(size, size, QImage.Format_ARGB32)
            image.fill(Qt.transparent)
            painter = QPainter(image)
            painter.setRenderHint(QPainter.Antialiasing)
            renderer.render(painter)
            painter.end()
            image.save(str(HERE / f"{state}-{size}.png"))
    del app
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
