"""The tray for real: an X server (Xvfb), a tray host (trayer), the app's icon right-clicked, a screenshot.

The screenshot is saved as tests/artifacts/tray-menu.png (ignored by git) for a person to look at.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.harness import TESTS
from support.pngio import read_png
from worker_app import config as config_mod

pytestmark = [pytest.mark.blender,  # the app starts the real worker core, which probes Blender
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Xvfb and trayer: Linux only")]

TOOLS = ("Xvfb", "trayer", "xdotool", "xwininfo", "import")
ARTIFACTS = TESTS / "artifacts"


def require_tools():
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        message = f"the real-tray test needs {', '.join(missing)} (Debian: xvfb trayer xdotool x11-utils imagemagick)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def x_display(tmp_path):
    yield from _x_server(tmp_path, "1024x768x24")


@pytest.fixture
def wide_display(tmp_path):
    """A screen a 1280×800 window fits on, beside the tray's panel."""
    yield from _x_server(tmp_path, "1600x1000x24")


def _x_server(tmp_path, screen: str):
    require_tools()
    read_fd, write_fd = os.pipe()
    xvfb_log = open(tmp_path / "xvfb.log", "w")
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", screen, "-nolisten", "tcp"],
                            pass_fds=(write_fd,), stderr=xvfb_log)
    os.close(write_fd)
    number = b""
    while not number.endswith(b"\n"):  # Xvfb may write the number and its newline separately
        chunk = os.read(read_fd, 16)
        if not chunk:
            break
        number += chunk
    os.close(read_fd)
    number = number.decode().strip()
    display = f":{number}"
    trayer = start_trayer(display, tmp_path)
    try:
        yield display
    finally:
        trayer.terminate()
        xvfb.terminate()
        trayer.wait(5)
        xvfb.wait(5)


def start_trayer(display: str, tmp_path: Path) -> subprocess.Popen:
    """trayer on ``display``, once its panel window is up: the tray app must find a tray host to embed in. A
    trayer that died at start (seen once beside a busy machine) is started again, and what it said is kept."""
    log = open(tmp_path / "trayer.log", "a")
    for _attempt in range(3):
        trayer = subprocess.Popen(["trayer", "--edge", "top", "--align", "right", "--widthtype", "request",
                                   "--height", "32", "--transparent", "false", "--tint", "0x303030",
                                   "--SetDockType", "true"], env={**os.environ, "DISPLAY": display},
                                  stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and trayer.poll() is None:
            if any(title == "panel" for _, title, *_ in windows(display)):
                return trayer
            time.sleep(0.1)
        trayer.kill()
        trayer.wait(5)
    raise AssertionError(f"trayer never showed its panel: {(tmp_path / 'trayer.log').read_text()}")


def windows(display):
    """Every window: (id, title, x, y, width, height, depth in the tree)."""
    out = subprocess.run(["xwininfo", "-root", "-tree"], env={**os.environ, "DISPLAY": display},
                         capture_output=True, text=True, timeout=10).stdout
    found = []
    for line in out.splitlines():
        match = re.match(r'^(\s*)(0x[0-9a-f]+) (?:"([^"]*)"|\(has no name\)).*?(\d+)x(\d+)\+-?\d+\+-?\d+\s+\+(-?\d+)\+(-?\d+)',
                         line)
        if match:
            indent, wid, title, w, h, x, y = match.groups()
            found.append((wid, title or "", int(x), int(y), int(w), int(h), len(indent)))
    return found


def screenshot(display, path: Path) -> Path:
    subprocess.run(["import", "-window", "root", "-depth", "8", f"PNG24:{path}"],
                   env={**os.environ, "DISPLAY": display}, check=True, timeout=30)
    return path


def tray_env(x_display, tmp_path, server_url: str, token: str) -> dict:
    """The environment of a real `homefarm` tray signed in to ``server_url``."""
    home = tmp_path / "home"
    env = {**os.environ, "DISPLAY": x_display, "QT_QPA_PLATFORM": "xcb", "HOMEFARM_HOME": str(home),
           "PYTHON_KEYRING_BACKEND": "support.keyring_file_backend.FileKeyring",
           "HOMEFARM_TEST_KEYRING": str(tmp_path / "keyring.json"),
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    os.environ["HOMEFARM_TEST_KEYRING"] = env["HOMEFARM_TEST_KEYRING"]
    from support.keyring_file_backend import FileKeyring
    FileKeyring().set_password("homefarm", f"worker-token@{server_url}", token)
    paths = config_mod.Paths(home / "config", home / "data", home / "cache", home / "logs")
    config_mod.set_values(paths, {"server.url": server_url, "blender.device": "CPU"})
    return env


def find_icon(x_display, app, tmp_path, deadline):
    icon = None
    while time.monotonic() < deadline and icon is None:
        panel_children = [w for w in windows(x_display) if w[1] == "homefarm" and w[6] >= 9 and w[4] <= 64]
        icon = panel_children[0] if panel_children else None
        time.sleep(0.25)
    if icon is None:
        app.kill()
        raise AssertionError("the tray icon never appeared in trayer; windows: "
                             f"{windows(x_display)}\napp output:\n{app.communicate()[0]}\nXvfb:\n"
                             f"{(tmp_path / 'xvfb.log').read_text()}")
    return icon


def open_menu(x_display, icon, deadline):
    """Right-clicks the icon; returns the menu's window."""
    _, _, x, y, w, h, _ = icon
    subprocess.run(["xdotool", "mousemove", str(x + w // 2), str(y + h // 2), "click", "3"],
                   env={**os.environ, "DISPLAY": x_display}, check=True, timeout=10)
    menu = None
    while time.monotonic() < deadline and menu is None:
        menus = [win for win in windows(x_display) if win[5] >= 150 and win[4] >= 120 and win[6] == 5
                 and win[1] in ("", "homefarm")]
        menu = menus[0] if menus else None
        time.sleep(0.2)
    assert menu is not None, "no menu window opened"
    time.sleep(0.8)
    return menu


def stop(app) -> str:
    app.send_signal(signal.SIGTERM)
    try:
        return app.communicate(timeout=30)[0]
    except subprocess.TimeoutExpired:
        app.kill()
        return app.communicate()[0]


def test_real_tray_menu_under_xvfb(x_display, served, tmp_path):
    env = tray_env(x_display, tmp_path, served.url, served.worker_token)
    app = subprocess.Popen([sys.executable, "-m", "worker_app"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        icon = find_icon(x_display, app, tmp_path, deadline)
        while time.monotonic() < deadline and not served.app.session.get(
                served.url + "/api/v1/workers", timeout=5).json()["workers"]:
            time.sleep(0.25)
        time.sleep(1.5)  # the first snapshots reach the menu
        ARTIFACTS.mkdir(exist_ok=True)
        before = screenshot(x_display, tmp_path / "before.png")
        menu = open_menu(x_display, icon, deadline)
        after = screenshot(x_display, ARTIFACTS / "tray-menu.png")
        _, _, mx, my, mw, mh, _ = menu
        _, _, old = read_png(before)
        _, _, new = read_png(after)
        changed = sum(1 for j in range(my, min(my + mh, len(new))) for i in range(mx, min(mx + mw, len(new[0])))
                      if old[j][i] != new[j][i])
        assert changed > 0.3 * mw * mh, f"the menu's area barely changed ({changed} of {mw * mh} pixels)"
    finally:
        output = stop(app)
    assert app.returncode == 0, output


MENU_MAX_WIDTH = 560  # px: the status lines are cut at 380 px; icons, margins and the shortcut column add the rest


def test_a_long_error_keeps_the_real_menu_narrow(x_display, tmp_path):
    """The worker cannot reach its server (https to a plain-http one: a long sentence); the menu shows it cut
    to a bounded width, on screen. tests/artifacts/tray-menu-long-error.png is for a person to look at."""
    from support import plain_server

    plain = plain_server.serve()
    env = tray_env(x_display, tmp_path, f"https://127.0.0.1:{plain.server_address[1]}", "hfw_x")
    app = subprocess.Popen([sys.executable, "-m", "worker_app"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        icon = find_icon(x_display, app, tmp_path, deadline)
        # The menu may open before or after the worker's first try fails: either way, once the long line is in
        # the menu, the menu is narrow and on the screen (one that grew while open is moved back).
        menu = open_menu(x_display, icon, deadline)
        log = tmp_path / "home" / "logs" / "tray.log"
        while time.monotonic() < deadline and "backing off: server unreachable" not in (
                log.read_text() if log.exists() else ""):
            time.sleep(0.2)
        time.sleep(1.0)  # the snapshot reaches the open menu
        menu = next(w for w in windows(x_display) if w[0] == menu[0])
        ARTIFACTS.mkdir(exist_ok=True)
        screenshot(x_display, ARTIFACTS / "tray-menu-long-error.png")
        _, _, mx, my, mw, mh, _ = menu
        assert mw <= MENU_MAX_WIDTH, f"the menu is {mw} px wide"
        assert mx + mw <= 1024, f"the menu runs off the screen ({mx} + {mw} px)"
    finally:
        output = stop(app)
        plain.shutdown()
        plain.server_close()
    assert "answers in plain http" in output, "the whole sentence is in the log"


def test_the_sign_in_dialog_shows_a_long_error_whole(x_display, tmp_path):
    """The Sign-in dialog on a real X server after a failed sign-in: the error wraps, the dialog grows to
    show it whole, its width stays bounded. tests/artifacts/sign-in-error.png is for a person to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "sign-in-error.png"
    script = TESTS / "support" / "x11_sign_in.py"
    result = subprocess.run([sys.executable, str(script), str(shot)], capture_output=True, text=True, timeout=90,
                            env={**os.environ, "DISPLAY": x_display, "QT_QPA_PLATFORM": "xcb",
                                 "HOMEFARM_HOME": str(tmp_path / "home"),
                                 "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])})
    assert result.returncode == 0, result.stdout + result.stderr
    seen = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert "answers in plain http" in seen["message"]
    assert int(seen["dialog_width"]) <= 700, seen
    assert int(seen["label_height"]) >= int(seen["label_needs"]), f"the error is cut: {seen}"
    assert int(seen["lines"]) >= 3, "a long error wraps over several lines"
    assert shot.stat().st_size > 5000


def test_the_activity_window_from_the_real_tray_after_a_real_job(wide_display, tmp_path):
    """`homefarm serve`, then `homefarm run` renders a real job (its GPU figures from tests/support/fake_nvml.py,
    this machine having no NVIDIA GPU) with a pause by the owner before it; then the real tray under Xvfb, its
    menu's "Activity…" chosen: the window, a process of its own, shows the job's thumbnail, today's energy and
    the temperature with the pause band. Screenshots: tests/artifacts/activity-real-1280x800.png and
    activity-real-800x600.png. Quitting the tray closes the window."""
    from support.harness import FAST_RENDER, private_file
    from support.server_process import start_server
    from worker_app.app_client import AppClient
    from worker_app.demo import sample_scene
    from worker_app.runtime import ledger

    server = start_server(tmp_path / "server")
    home = tmp_path / "home"
    env = {**os.environ, "HOMEFARM_HOME": str(home), "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
           "PYTHONPATH": os.pathsep.join([str(TESTS / "support" / "fake_gpu_site"), str(TESTS),
                                          os.environ.get("PYTHONPATH", "")])}
    env.pop("DISPLAY", None)
    paths = config_mod.Paths(home / "config", home / "data", home / "cache", home / "logs")
    config_mod.set_values(paths, {"server.url": server.url, "blender.device": "CPU", "guard.gpu_interval_s": 0.5,
                                  "guard.check_interval_s": 0.5, "guard.hold_off_s": 1,
                                  "energy.price_per_kwh": 0.3})
    token = private_file(tmp_path / "secret" / "token", server.worker_token)
    worker = subprocess.Popen([sys.executable, "-m", "worker_app", "run", "--token-file", str(token)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    app = None
    try:
        stats = ledger(paths)
        deadline = time.monotonic() + 60
        run = lambda *args: subprocess.run([sys.executable, "-m", "worker_app", *args], env=env,  # noqa: E731
                                           capture_output=True, text=True, timeout=60)
        assert run("pause", "30m").returncode == 0
        while time.monotonic() < deadline and not stats.activity(hours=1).pauses:
            time.sleep(0.2)
        assert stats.activity(hours=1).pauses, worker.poll() is not None and worker.communicate()[0][-3000:]
        time.sleep(1)
        assert run("resume").returncode == 0
        client = AppClient(server.url, server.app_token)
        asset = client.upload_asset(sample_scene())
        job = client.submit({"scene": {k: asset[k] for k in ("url", "sha256", "size")},
                             "render": {**FAST_RENDER, "frames": "1-3"}})
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and client.job(job["id"])["state"] != "done":
            time.sleep(0.2)
        assert client.job(job["id"])["state"] == "done"
        worker.send_signal(signal.SIGTERM)  # the minute under way is written as it stops
        worker.communicate(timeout=60)
        activity = stats.activity(hours=1)
        assert activity.pauses[0].kind == "manual" and activity.days[-1].energy_wh
        assert any(s.temp_c == 64 for s in activity.samples)

        app = subprocess.Popen([sys.executable, "-m", "worker_app"], env={**env, "DISPLAY": wide_display,
                                                                            "QT_QPA_PLATFORM": "xcb"},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        icon = find_icon(wide_display, app, tmp_path, deadline)
        open_menu(wide_display, icon, deadline)
        # Not signed in, so the worker is off: the enabled entries begin "Pause while gaming", "Start at login",
        # "Activity…"; the keyboard walks the menu as a person's would.
        for key in ("Down", "Down", "Down", "Return"):
            subprocess.run(["xdotool", "key", key], env={**os.environ, "DISPLAY": wide_display}, check=True,
                           timeout=10)
            time.sleep(0.15)
        window = None
        while time.monotonic() < deadline and window is None:
            found = [w for w in windows(wide_display) if w[1] == "homefarm — Activity" and w[4] >= 600]
            window = found[0] if found else None
            time.sleep(0.25)
        assert window is not None, f"no activity window; windows: {windows(wide_display)}"
        time.sleep(2)  # read and drawn
        shots = []
        for size, name in (("1280 800", "activity-real-1280x800.png"), ("800 600", "activity-real-800x600.png")):
            subprocess.run(["xdotool", "windowsize", window[0], *size.split()],
                           env={**os.environ, "DISPLAY": wide_display}, check=True, timeout=10)
            time.sleep(1.5)
            path = ARTIFACTS / name
            ARTIFACTS.mkdir(exist_ok=True)
            subprocess.run(["import", "-window", window[0], "-depth", "8", f"PNG24:{path}"],
                           env={**os.environ, "DISPLAY": wide_display}, check=True, timeout=30)
            shots.append(read_png(path))
        assert [(w, h) for w, h, _ in shots] == [(1280, 800), (800, 600)]
        assert stats.thumbnails(), "the window made the thumbnail of the job `homefarm run` rendered"
        windows_before_quit = [w for w in windows(wide_display) if w[1] == "homefarm — Activity"]
        output = stop(app)
        assert windows_before_quit and not [w for w in windows(wide_display) if w[1] == "homefarm — Activity"], \
            output
    finally:
        if worker.poll() is None:
            worker.kill()
        if app is not None and app.poll() is None:
            app.kill()
        server.stop()
