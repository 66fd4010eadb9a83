"""The tray's log in a window of its own, for a PC where no program is set to open text files."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPlainTextEdit, QVBoxLayout

SHOWN_BYTES = 256 * 1024  # the end of the log: what happened lately


def read_tail(path: Path, limit: int = SHOWN_BYTES) -> str:
    try:
        with open(path, "rb") as file:
            file.seek(0, 2)
            size = file.tell()
            file.seek(max(0, size - limit))
            data = file.read()
    except OSError:
        return "The log is empty so far."
    text = data.decode("utf-8", errors="replace")
    return text.split("\n", 1)[1] if size > limit and "\n" in text else text


class LogWindow(QDialog):
    def __init__(self, path: Path, background, parent=None):
        super().__init__(parent)
        self.setWindowTitle("homefarm log")
        self.resize(900, 520)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QPlainTextEdit.NoWrap)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.FixedFont))
        self.text.setPlainText("Reading the log…")
        note = QLabel("The latest part of the tray's log; the newest lines are at the bottom.")
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(note)
        layout.addWidget(self.text)
        layout.addWidget(buttons)
        background.run(lambda: read_tail(path), self._show)  # the disk is read off the GUI thread

    def _show(self, text) -> None:
        self.text.setPlainText(text if isinstance(text, str) else "The log could not be read.")
        bar = self.text.verticalScrollBar()
        bar.setValue(bar.maximum())
