"""The tray's menu: status lines, then every control, each entry calling one of the app's commands."""

from __future__ import annotations

from PySide6.QtGui import QAction


def build_menu(app) -> None:
    m = app.menu
    m.setToolTipsVisible(True)  # a status line cut to the menu's width has its whole text in its tooltip
    m.aboutToShow.connect(app.fit_lines)
    m.aboutToShow.connect(app.recheck_config)
    app.job_action = _status_line(app, "Starting")
    app.gpu_action = _status_line(app, "GPU: no figures yet")
    app.today_action = _status_line(app, "Today: no jobs yet")
    app.update_action = _status_line(app, "")
    app.update_action.setVisible(False)
    m.addSeparator()
    app.pause_menu = m.addMenu("Pause")
    app.pause_actions = {}
    for key, label in (("30m", "For 30 minutes"), ("1h", "For 1 hour"), ("tomorrow", "Until tomorrow morning"),
                       ("indefinitely", "Until I resume")):
        action = app.pause_menu.addAction(label)
        action.triggered.connect(lambda checked=False, k=key: app.pause(k))
        app.pause_actions[key] = action
    app.resume_action = _action(app, "Resume", app.resume)
    app.not_a_game_action = _action(app, "Never pause for this program", app.never_pause_for_program)
    app.not_a_game_action.setVisible(False)
    app.gaming_action = m.addAction("Pause while gaming")
    app.gaming_action.setCheckable(True)
    app.gaming_action.setChecked(app.cfg.pause_while_gaming)
    app.gaming_action.toggled.connect(app.set_pause_while_gaming)
    app.autostart_action = m.addAction("Start at login")
    app.autostart_action.setCheckable(True)
    app.autostart_action.toggled.connect(app.set_autostart)
    m.addSeparator()
    app.outputs_action = _action(app, "Open outputs folder", app.open_outputs)
    app.log_action = _action(app, "View log", app.view_log)
    app.settings_action = _action(app, "Settings…", app.open_settings)
    app.config_file_action = _action(app, "Open config file", app.open_config_file)
    app.config_file_action.setVisible(False)  # shown while the config file has a mistake
    app.sign_in_action = _action(app, "Sign in…", app.open_sign_in)
    app.sign_out_action = _action(app, "Sign out", app.sign_out)
    # Until the token store has answered, neither: "Sign out" must not show for a PC never signed in.
    app.sign_in_action.setVisible(False)
    app.sign_out_action.setVisible(False)
    # Pausing and resuming need a running worker.
    app.pause_menu.setEnabled(False)
    app.resume_action.setEnabled(False)
    app.about_action = _action(app, "About homefarm", app.about)
    m.addSeparator()
    app.quit_action = _action(app, "Quit", app.quit)


def _action(app, text: str, command) -> QAction:
    """A menu entry that runs ``command`` with no arguments (not with the "checked" flag Qt passes)."""
    action = app.menu.addAction(text)
    action.triggered.connect(lambda checked=False: command())
    return action


def _status_line(app, text: str) -> QAction:
    action = app.menu.addAction(text)
    action.setEnabled(False)
    return action
