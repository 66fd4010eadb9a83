"""Run by tests/test_tray_x11.py on Xvfb: the Sign-in dialog after a failed sign-in (https to a plain-http
server), its geometry printed as key=value lines and a screenshot of the screen written to argv[1]."""

import subprocess
import sys
import time

from PySide6.QtWidgets import QApplication

from support import plain_server
from support.keyring_file_backend import MemoryKeyring
from worker_app import config as config_mod
from worker_app.system.credentials import TokenStore
from worker_app.tray.background import Background
from worker_app.tray.signin import SignInDialog


def main() -> int:
    server = plain_server.serve()
    app = QApplication([])
    background = Background()
    dialog = SignInDialog(config_mod.Config(server_url=f"https://127.0.0.1:{server.server_address[1]}"),
                          TokenStore(MemoryKeyring()), background, on_signed_in=lambda url: None)
    dialog.show()
    dialog.token.setText("hfw_x")
    dialog.sign_in()
    deadline = time.monotonic() + 30
    while not dialog.buttons.isEnabled() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.02)
    for _ in range(20):  # the new size and the repaint reach the X server
        app.processEvents()
        time.sleep(0.05)
    label = dialog.message
    print(f"message={label.text()}")
    print(f"dialog_width={dialog.width()}")
    print(f"label_height={label.height()}")
    print(f"label_needs={label.heightForWidth(label.width())}")
    print(f"lines={round(label.height() / label.fontMetrics().lineSpacing())}")
    subprocess.run(["import", "-window", "root", "-depth", "8", f"PNG24:{sys.argv[1]}"], check=True, timeout=30)
    background.close()
    server.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
