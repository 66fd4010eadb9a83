"""Sign-in: the server URL and worker token, checked against the server, kept in the OS keyring."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QVBoxLayout

from worker_app import config as config_mod
from worker_app.system.credentials import token_kind_problem


class SignInDialog(QDialog):
    def __init__(self, cfg: config_mod.Config, tokens, background, on_signed_in, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Sign in to your homefarm server")
        self.cfg, self.tokens, self.background, self.on_signed_in = cfg, tokens, background, on_signed_in
        self.url = QLineEdit(cfg.server_url)
        self.token = QLineEdit()
        self.token.setEchoMode(QLineEdit.Password)
        self.token.setPlaceholderText("the worker token your server printed")
        self.message = QLabel("")
        self.message.setWordWrap(True)  # an error wraps, and the dialog grows to show it whole
        self.message.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.setMinimumWidth(460)
        form = QFormLayout()
        form.addRow("Server URL", self.url)
        form.addRow("Worker token", self.token)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.button(QDialogButtonBox.Ok).setText("Sign in")
        self.buttons.accepted.connect(self.sign_in)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)

    def _say(self, text: str) -> None:
        self.message.setText(text)
        self.adjustSize()

    def sign_in(self) -> None:
        from worker_app.client import ClientError, Unauthorized, WorkerClient
        from worker_app.system.credentials import CredentialError

        url, token = self.url.text().strip().rstrip("/"), self.token.text().strip()
        try:
            problems = config_mod.check_values({"server.url": url})
            if problems:
                raise config_mod.ConfigError("server.url", problems["server.url"])
            config_mod.check_server_url(url, self.cfg.allow_insecure_http)
        except config_mod.ConfigError as error:
            self._say(str(error))
            return
        if not token:
            self._say("Paste the worker token.")
            return
        if token_kind_problem(token):
            self._say(token_kind_problem(token)[0].upper() + token_kind_problem(token)[1:] + ".")
            return
        self._say("Checking with the server…")
        self.buttons.setEnabled(False)
        tokens = self.tokens

        def check():
            client = WorkerClient(url, token, self.cfg.allow_insecure_http)
            try:
                client.ping()
            except Unauthorized:
                return "The server refused this token: ask the server's owner for a worker token (it starts with hfw_)."
            except ClientError as error:
                return f"Could not reach the server: {error}"
            finally:
                client.close()
            try:
                tokens.set(url, token)
            except CredentialError as error:
                return str(error)
            return None

        def done(problem):
            self.buttons.setEnabled(True)
            if problem:
                self._say(str(problem))
                return
            self.on_signed_in(url)
            self.accept()
        self.background.run(check, done)
