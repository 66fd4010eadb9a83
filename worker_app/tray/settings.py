"""The settings dialog: each field validated by the same rules as the config file, errors shown beside it."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QApplication, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog,
                               QFormLayout, QFrame, QHBoxLayout, QInputDialog, QLabel, QLineEdit, QPlainTextEdit,
                               QPushButton, QScrollArea, QVBoxLayout, QWidget)

from worker_app import config as config_mod

CHOICE_LABELS = {
    "": "best available",
    "AUTO": "Best GPU, else CPU", "GPU": "GPU", "CPU": "CPU",
    "requeue": "Give the job back (frees the GPU at once)",
    "suspend": "Freeze Blender (keeps its GPU memory)",
    "finish": "Finish the job first",
    "ask": "Ask me first", "yes": "Install it without asking", "no": "Leave the job to a PC that has it",
}

# What to type, shown in an empty field before anything goes wrong.
PLACEHOLDERS = {
    "server.url": "https://render.example.com",
    "worker.name": "this PC's name",
    "blender.gpu_indices": "0, 1",
    "guard.games": "eldenring.exe",
    "guard.not_games": "obs64.exe",
    "guard.render_only": "mon-fri 01:00-08:00\n18:00-23:00",
    "guard.never": "sat-sun 10:00-22:00",
}

# (config key, label, kind) for each setting the dialog shows, in the order of the settings table (config.py).
FIELDS = [(s.dotted, s.label, s.kind) for s in config_mod.SETTINGS if s.label]


class SettingsDialog(QDialog):
    def __init__(self, cfg: config_mod.Config, background, save, parent=None, data_dir=None,
                 install_blender=None, blenders_changed=None):
        super().__init__(parent)
        self.setWindowTitle("homefarm settings")
        self.cfg = cfg
        # The Blenders homefarm installs (render/installs.py): where they live, how the tray installs one (its
        # progress in the menu), and what to call once one is removed.
        self.data_dir = data_dir
        self.install_blender = install_blender
        self.blenders_changed = blenders_changed or (lambda: None)
        self.background = background
        self.save = save
        self.inputs: dict[str, QWidget] = {}
        self.errors: dict[str, QLabel] = {}
        self.form = form = QFormLayout()
        for key, label, kind in FIELDS:
            form.addRow(label, self._input(key, kind, config_mod.value_of(cfg, key)))
            # Each field's error is a row of its own below it, shown only with an error: the form lays it
            # out at its wrapped height, never on the field.
            error = QLabel("")
            error.setStyleSheet("color: #c62828;")
            error.setWordWrap(True)
            form.addRow(error)  # spans the row under its field; hidden, it takes no room
            error.setVisible(False)
            self.errors[key] = error
        buttons = QDialogButtonBox(QDialogButtonBox.Save | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.try_save)
        buttons.rejected.connect(self.reject)
        self.status = QLabel("")
        # The form scrolls when the screen is too small for it (or for its errors): rows are never squeezed
        # into one another.
        self.content = QWidget()
        self.content.setLayout(form)
        self.scroll = QScrollArea()
        self.scroll.setWidget(self.content)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.NoFrame)
        layout = QVBoxLayout(self)
        layout.addWidget(self.scroll)
        layout.addWidget(self.status)
        layout.addWidget(buttons)
        self.fit_to_screen()

    def fit_to_screen(self) -> None:
        """As tall as the form wants, within the screen; wide enough for it without a horizontal scroll."""
        hint = self.content.sizeHint()
        bar = self.scroll.verticalScrollBar().sizeHint().width()
        screen = (self.screen() or QApplication.primaryScreen()).availableGeometry()
        chrome = self.sizeHint().height() - self.scroll.sizeHint().height()
        self.resize(min(hint.width() + bar + 40, screen.width()),
                    min(hint.height() + chrome + 8, int(screen.height() * 0.9)))

    def _input(self, key, kind, value) -> QWidget:
        if isinstance(kind, tuple):
            widget = QComboBox()
            widget.addItems([CHOICE_LABELS.get(c, c) for c in kind])
            widget.setCurrentIndex(kind.index(value) if value in kind else 0)
            widget.choices = kind
        elif kind == "lines":
            widget = QPlainTextEdit("\n".join(value))
            widget.setFixedHeight(64)
            widget.setPlaceholderText(PLACEHOLDERS.get(key, ""))
        elif kind == "number":
            widget = QDoubleSpinBox()
            widget.setRange(0, 100000)
            widget.setDecimals(2)
            widget.setValue(float(value))
        elif kind == "indices":
            widget = QLineEdit(", ".join(str(i) for i in value))
        elif kind == "blender":
            return self._blender_input(value)
        else:
            widget = QLineEdit(str(value))
        if isinstance(widget, QLineEdit):
            widget.setPlaceholderText(PLACEHOLDERS.get(key, ""))
        self.inputs[key] = widget
        return widget

    def _blender_input(self, value: str) -> QWidget:
        edit = QLineEdit(value)
        edit.setPlaceholderText("found automatically")
        # Wide enough for its placeholder beside the two buttons.
        edit.setMinimumWidth(edit.fontMetrics().horizontalAdvance(edit.placeholderText()) + 24)
        self.inputs["blender.path"] = edit
        self.blender_version = QLabel("")
        self.blender_version.setWordWrap(True)
        self.blender_version.setTextFormat(Qt.PlainText)
        detect, browse = QPushButton("Detect"), QPushButton("Browse…")
        detect.clicked.connect(self.detect_blender)
        browse.clicked.connect(self.browse_blender)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        for w in (edit, detect, browse):
            row.addWidget(w)
        box = QVBoxLayout()
        box.setContentsMargins(0, 0, 0, 0)
        box.addLayout(row)
        box.addWidget(self.blender_version)
        if self.data_dir is not None:
            self.add_blender_button = QPushButton("Install a Blender version…")
            self.add_blender_button.setAccessibleName("Install a Blender version")
            self.add_blender_button.clicked.connect(self.ask_blender_to_add)
            self.remove_blender_button = QPushButton("Remove one…")
            self.remove_blender_button.setAccessibleName("Remove a Blender homefarm installed")
            self.remove_blender_button.clicked.connect(self.ask_blender_to_remove)
            manage = QHBoxLayout()
            manage.setContentsMargins(0, 0, 0, 0)
            manage.addWidget(self.add_blender_button)
            manage.addWidget(self.remove_blender_button)
            manage.addStretch(1)
            box.addLayout(manage)
        holder = QWidget()
        holder.setLayout(box)
        self.detect_blender()
        return holder

    def detect_blender(self) -> None:
        from worker_app.render.discovery import BlenderNotFound, find_all
        from worker_app.render.installs import kind_of

        path = self.inputs["blender.path"].text().strip()
        data_dir = self.data_dir
        self.blender_version.setText("Looking for Blender…")

        def shown(result):
            if isinstance(result, BlenderNotFound):
                self.blender_version.setText(str(result))
            elif isinstance(result, Exception):
                self.blender_version.setText(f"Blender did not start: {result}")
            else:
                self.blender_version.setText("\n".join(text for text in result))
        self.background.run(lambda: [f"Blender {b.version} at {b.path}" if kind_of(b) == "executable" else
                                     f"Blender {b.version}, installed by homefarm ({kind_of(b)})"
                                     for b in find_all(path, data_dir)], shown)

    def ask_blender_to_add(self) -> None:
        from worker_app.render.installs import SERIES

        series, ok = QInputDialog.getText(self, "Install a Blender version",
                                          "Which Blender? A series such as 4.5 (its newest release is installed; "
                                          "about 1 GB):")
        series = series.strip()
        if not ok or not series:
            return
        if not SERIES.match(series):
            self.blender_version.setText(f"{series!r} is not a Blender series such as 4.5")
            return
        if self.install_blender is not None:
            self.install_blender(series)
            self.blender_version.setText(f"Installing Blender {series}: homefarm's menu shows how far it is.")

    def ask_blender_to_remove(self) -> None:
        from worker_app.render import installs

        data_dir = self.data_dir
        own = [b.version for b in installs.installed(data_dir)]
        if not own:
            self.blender_version.setText("homefarm installed no Blender here; it removes only those it installed.")
            return
        version, ok = QInputDialog.getItem(self, "Remove a Blender", "Remove which Blender homefarm installed?",
                                           own, 0, False)
        if not ok:
            return

        def removed(result):
            if isinstance(result, Exception):
                self.blender_version.setText(f"Blender {version} was not removed: {result}")
                return
            self.blenders_changed()
            self.detect_blender()
        self.background.run(lambda: installs.remove(data_dir, version), removed)

    def browse_blender(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose the Blender program")
        if path:
            self.inputs["blender.path"].setText(path)
            self.detect_blender()

    def values(self) -> dict:
        """The fields as config values; text that cannot even be read comes back as a string to refuse."""
        out = {}
        for key, _label, kind in FIELDS:
            widget = self.inputs[key]
            if isinstance(kind, tuple):
                out[key] = widget.choices[widget.currentIndex()]
            elif kind == "lines":
                out[key] = [line.strip() for line in widget.toPlainText().splitlines() if line.strip()]
            elif kind == "number":
                out[key] = widget.value()
            elif kind == "indices":
                text = widget.text().replace(" ", "")
                try:
                    out[key] = [int(part) for part in text.split(",") if part]
                except ValueError:
                    out[key] = text
            else:
                out[key] = widget.text().strip()
        return out

    def validate(self) -> dict[str, str]:
        values = self.values()
        problems = config_mod.check_values(values)
        if "server.url" not in problems:
            try:
                config_mod.check_server_url(values["server.url"], self.cfg.allow_insecure_http)
            except config_mod.ConfigError as error:
                problems["server.url"] = error.detail
        for key, label in self.errors.items():
            label.setText(problems.get(key, ""))
            label.setVisible(key in problems)
        self.fit_to_screen()  # errors shown or gone: the dialog fits them, or its form scrolls
        return problems

    def try_save(self) -> None:
        if self.validate():
            self.status.setText("Fix the fields marked in red.")
            return
        self.status.setText("Saving…")
        self.save(self.values(), on_saved=lambda cfg: self.accept())


__all__ = ["SettingsDialog", "FIELDS", "Qt"]
