"""The installer files agree with the app: names, paths, version, and the autostart registry value."""

import re
from pathlib import Path

from worker_app import __version__
from worker_app.system import autostart

ROOT = Path(__file__).parent.parent
ISS = (ROOT / "installer" / "homefarm.iss").read_text()
SPEC = (ROOT / "installer" / "homefarm.spec").read_text()


def define(name: str) -> str:
    return re.search(rf'#define {name} "([^"]*)"', ISS).group(1)


def test_version_names_and_registry_value_match_the_app():
    assert define("AppVersion") == __version__
    assert define("AppName") == "homefarm"
    assert define("AppExe") == re.search(r'APP_NAME = "([^"]+)"', SPEC).group(1) + ".exe"
    assert define("CliExe") == re.search(r'CLI_NAME = "([^"]+)"', SPEC).group(1) + ".exe"
    assert define("RunKey") == autostart.RUN_KEY
    assert define("RunValue") == autostart.APP_ID


def test_per_user_install_without_admin_rights():
    assert re.search(r"^PrivilegesRequired=lowest$", ISS, re.M)
    assert re.search(r"^DefaultDirName=\{autopf\}", ISS, re.M)


def test_the_setup_installs_what_the_spec_builds():
    assert 'Source: "..\\dist\\homefarm\\*"' in ISS
    assert 'COLLECT(tray, cli, analysis.binaries, analysis.datas, name=APP_NAME' in SPEC


def test_run_value_is_written_like_the_app_writes_it():
    # The app writes the quoted path of the frozen exe; the setup must write the same string.
    app_value = autostart._quote_windows([r"C:\Users\Ada\AppData\Local\Programs\homefarm\homefarm.exe"])
    assert app_value == r'"C:\Users\Ada\AppData\Local\Programs\homefarm\homefarm.exe"'
    assert 'ValueData: """{app}\\{#AppExe}"""' in ISS
    assert "uninsdeletevalue" in ISS and "RegDeleteValue(HKEY_CURRENT_USER, '{#RunKey}', '{#RunValue}')" in ISS


def test_uninstall_keeps_the_owner_s_data_unless_asked():
    assert "MB_DEFBUTTON2" in ISS  # "No" is the default answer
    assert "DelTree(DataDir" in ISS


def test_the_spec_bundles_scripts_resources_and_keyring_metadata():
    for needed in ('"render_job.py"', '"probe_devices.py"', '"sample_scene.blend"', '"default_config.toml"',
                   'copy_metadata("keyring")', 'collect_submodules("keyring.backends")', '"pynvml"',
                   '"LSUIElement": True', "console=False", "console=True"):
        assert needed in SPEC, needed
