"""The tray's menu: status lines, then every control, each entry calling one of the app's commands.

``build_menu`` fills a ``QMenu`` and returns ``TrayMenu``, which names every entry the app shows, hides or
changes; the commands it calls are the ``MenuCommands`` the app has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu

PAUSE_CHOICES = (("30m", "For 30 minutes"), ("1h", "For 1 hour"), ("tomorrow", "Until tomorrow morning"),
                 ("indefinitely", "Until I resume"))


class MenuCommands(Protocol):
    """What the menu's entries call: the tray app's commands."""

    def fit_lines(self) -> None: ...
    def recheck_config(self) -> None: ...
    def pause(self, how: str) -> None: ...
    def resume(self) -> None: ...
    def never_pause_for_program(self) -> None: ...
    def set_pause_while_gaming(self, on: bool) -> None: ...
    def set_autostart(self, on: bool) -> None: ...
    def open_outputs(self) -> None: ...
    def view_log(self) -> None: ...
    def open_settings(self) -> None: ...
    def open_config_file(self) -> None: ...
    def open_sign_in(self) -> None: ...
    def sign_out(self) -> None: ...
    def about(self) -> None: ...
    def open_activity(self) -> None: ...
    def install_blender(self) -> None: ...
    def quit(self) -> None: ...


@dataclass(frozen=True)
class TrayMenu:
    """Every entry of the tray's menu that the app updates."""
    job: QAction  # status lines
    gpu: QAction
    today: QAction
    update: QAction
    install_blender: QAction  # shown while a job needs a Blender this PC lacks; the install's progress
    pause_menu: QMenu  # controls
    pause_for: dict[str, QAction]
    resume: QAction
    not_a_game: QAction
    gaming: QAction
    autostart: QAction
    activity: QAction
    outputs: QAction
    log: QAction
    settings: QAction
    config_file: QAction
    sign_in: QAction
    sign_out: QAction
    about: QAction
    quit: QAction


def build_menu(menu: QMenu, app: MenuCommands, pause_while_gaming: bool) -> TrayMenu:
    menu.setToolTipsVisible(True)  # a status line cut to the menu's width has its whole text in its tooltip
    menu.aboutToShow.connect(app.fit_lines)
    menu.aboutToShow.connect(app.recheck_config)
    job = _status_line(menu, "Starting")
    gpu = _status_line(menu, "GPU: no figures yet")
    today = _status_line(menu, "Today: no jobs yet")
    update = _status_line(menu, "")
    update.setVisible(False)
    install_blender = _action(menu, "Install Blender…", app.install_blender)
    install_blender.setVisible(False)
    menu.addSeparator()
    pause_menu = menu.addMenu("Pause")
    pause_for = {}
    for key, label in PAUSE_CHOICES:
        action = pause_menu.addAction(label)
        action.triggered.connect(lambda checked=False, k=key: app.pause(k))
        pause_for[key] = action
    resume = _action(menu, "Resume", app.resume)
    not_a_game = _action(menu, "Never pause for this program", app.never_pause_for_program)
    not_a_game.setVisible(False)
    gaming = menu.addAction("Pause while gaming")
    gaming.setCheckable(True)
    gaming.setChecked(pause_while_gaming)
    gaming.toggled.connect(app.set_pause_while_gaming)
    autostart = menu.addAction("Start at login")
    autostart.setCheckable(True)
    autostart.toggled.connect(app.set_autostart)
    menu.addSeparator()
    activity = _action(menu, "Activity…", app.open_activity)
    outputs = _action(menu, "Open outputs folder", app.open_outputs)
    log = _action(menu, "View log", app.view_log)
    settings = _action(menu, "Settings…", app.open_settings)
    config_file = _action(menu, "Open config file", app.open_config_file)
    config_file.setVisible(False)  # shown while the config file has a mistake
    sign_in = _action(menu, "Sign in…", app.open_sign_in)
    sign_out = _action(menu, "Sign out", app.sign_out)
    # Until the token store has answered, neither: "Sign out" must not show for a PC never signed in.
    sign_in.setVisible(False)
    sign_out.setVisible(False)
    # Pausing and resuming need a running worker.
    pause_menu.setEnabled(False)
    resume.setEnabled(False)
    about = _action(menu, "About homefarm", app.about)
    menu.addSeparator()
    quit_action = _action(menu, "Quit", app.quit)
    return TrayMenu(job=job, gpu=gpu, today=today, update=update, install_blender=install_blender, pause_menu=pause_menu, pause_for=pause_for,
                    resume=resume, not_a_game=not_a_game, gaming=gaming, autostart=autostart, activity=activity,
                    outputs=outputs,
                    log=log, settings=settings, config_file=config_file, sign_in=sign_in, sign_out=sign_out,
                    about=about, quit=quit_action)


def _action(menu: QMenu, text: str, command: Callable[[], None]) -> QAction:
    """A menu entry that runs ``command`` with no arguments (not with the "checked" flag Qt passes)."""
    action = menu.addAction(text)
    action.triggered.connect(lambda checked=False: command())
    return action


def _status_line(menu: QMenu, text: str) -> QAction:
    action = menu.addAction(text)
    action.setEnabled(False)
    return action
