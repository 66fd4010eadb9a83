"""The installer files agree with the app: names, paths, version, and the autostart registry value."""

import os
import re
import subprocess
import sys


from support.harness import ROOT, posix_only
from worker_app import __version__
from worker_app.system import autostart

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
    for needed in ('(ROOT / "blender_scripts").glob("*.py")', '"sample_scene.blend"', '"default_config.toml"',
                   'copy_metadata("keyring")', 'collect_submodules("keyring.backends")', '"pynvml"',
                   '"LSUIElement": True', "console=False", "console=True"):
        assert needed in SPEC, needed


def test_the_setup_waits_for_the_running_tray_and_cleans_an_upgrade():
    """Upgrading while the tray runs: the setup waits on the mutex the tray holds, and old libraries go."""
    from worker_app.tray.main import hold_setup_mutex
    assert '#define TrayMutex "homefarm-tray"' in ISS and "AppMutex={#TrayMutex}" in ISS

    class Kernel32:
        def CreateMutexW(self, attributes, owned, name):
            self.name = name
            return 5
    k32 = Kernel32()
    assert hold_setup_mutex(k32) == 5 and k32.name == "homefarm-tray"
    assert 'Type: filesandordirs; Name: "{app}\\_internal"' in ISS


def test_uninstall_ends_both_programs_and_removes_the_sign_in_when_asked():
    assert "taskkill /IM {#AppExe} /F" in ISS and "taskkill /IM {#CliExe} /F" in ISS
    assert "Exec(ExpandConstant('{app}\\{#CliExe}'), 'logout'" in ISS


def test_an_all_users_install_writes_no_run_value():
    run_lines = [line for line in ISS.splitlines() if "{#RunKey}" in line and line.startswith("Root: HKCU")]
    assert run_lines and all("Check: not IsAdminInstallMode" in line for line in run_lines)


def test_the_windows_build_stops_at_a_failed_step_and_signs():
    script = (ROOT / "installer" / "build_windows.ps1").read_text()
    native = [line.strip() for line in script.splitlines()
              if line.strip().startswith((".\\.venv-build", "python ", "& $Iscc"))]
    assert native == [], f"native calls without an exit-code check: {native}"
    assert "signtool sign" in script and "HOMEFARM_SIGN_PFX" in script
    assert "#if VER < EncodeVer(6, 3, 0)" in ISS


def test_the_ci_workflow_is_valid():
    """actionlint (from the dev extra) on .github/workflows/ci.yml: syntax, expressions, shell scripts."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path as P
    actionlint = shutil.which("actionlint", path=str(P(sys.executable).parent)) or shutil.which("actionlint")
    result = subprocess.run([actionlint, str(ROOT / ".github" / "workflows" / "ci.yml")], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_script_the_worker_starts_blender_with_is_a_file_the_bundle_takes():
    """The spec bundles blender_scripts/*.py; each script the code names must be one of them."""
    import re

    root = ROOT
    source = "\n".join(p.read_text() for p in (root / "worker_app").rglob("*.py"))
    named = set(re.findall(r'script_path\("([\w.]+)"\)', source))
    assert {"render_job.py", "probe_devices.py", "warm.py"} <= named, named
    assert all((root / "blender_scripts" / name).is_file() for name in named)


def test_the_windows_ci_runs_the_server_from_the_suites_environment_and_the_worker_installed():
    ci = (ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8")
    line = next(line for line in ci.splitlines() if "installer\\smoke.py" in line)
    assert '"$env:HOMEFARM_APP\\homefarm-cli.exe"' in line and "--server-python .venv\\Scripts\\python.exe" in line
    assert 'pip install -e ".[dev]"' in ci, "the suite's environment has homefarm[server]"


def test_the_windowed_program_given_a_command_says_to_use_the_console_program():
    from worker_app.windowed import console_missing
    shown = []
    assert console_missing(["homefarm.exe", "login", "--server", "https://r.example.com"], stdout=None,
                           show=lambda title, text: shown.append(text)) == 2
    assert "homefarm-cli login --server https://r.example.com" in shown[0] and "terminal" in shown[0]
    assert console_missing(["homefarm.exe"], stdout=None, show=shown.append) is None, "no command: the tray starts"
    assert console_missing(["homefarm.exe", "activity"], stdout=None, show=shown.append) is None, \
        "the activity window is a window: the tray's menu starts it as homefarm.exe activity"
    assert console_missing(["homefarm", "doctor"], stdout=sys.stdout, show=shown.append) is None, "a console"
    spec = (ROOT / "installer" / "homefarm.spec").read_text(encoding="utf-8")
    assert "entry_tray.py" in spec and "console_missing(sys.argv)" in (ROOT / "installer" / "entry_tray.py").read_text(
        encoding="utf-8")


def test_login_without_any_standard_input_says_where_to_type_the_token(tmp_path):
    env = {**os.environ, "HOMEFARM_HOME": str(tmp_path / "home")}
    code = "import sys; sys.stdin = None; sys.argv = ['homefarm', 'login', '--server', 'http://127.0.0.1:9']; " \
           "from worker_app.cli import main; sys.exit(main())"
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "no console to read the token from; run `homefarm-cli login --server URL`" in run.stderr


def test_inno_setup_signs_the_setup_its_copies_and_the_uninstaller_and_ci_builds_its_own_bootloader():
    script = (ROOT / "installer" / "build_windows.ps1").read_text(encoding="utf-8")
    signed = ISS.split("#ifdef Sign", 1)[1].split("#endif", 1)[0]
    assert "SignTool=homefarm" in signed and "SignedUninstaller=yes" in signed
    # The tool the .iss names is the one the build defines, with Inno Setup's $f (the file) and $q (a quote),
    # escaped so that PowerShell does not take them for its own variables.
    assert '"/Shomefarm=signtool sign' in script and "`$f" in script and "`$q" in script and '"/DSign"' in script
    assert "Inno Setup $_" in script and "@(7, 6)" in script, "Inno Setup 7 or 6"
    assert "PYINSTALLER_COMPILE_BOOTLOADER" in script and "--no-binary pyinstaller" in script
    ci = (ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8")
    assert 'HOMEFARM_BUILD_BOOTLOADER: "1"' in ci


def test_make_test_and_ci_install_the_suites_programs_with_one_script():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^test: .*\btools\b", makefile, re.M) and "sh installer/ensure_test_tools.sh" in makefile
    assert "sh installer/ensure_test_tools.sh" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    script = (ROOT / "installer" / "ensure_test_tools.sh").read_text(encoding="utf-8")
    for package in ("blender", "postgresql", "mariadb-server", "nginx-light", "xvfb", "trayer", "dbus-daemon",
                    "libxcb-cursor0"):
        assert package in script.split("PACKAGES=", 1)[1].split('"', 2)[1].split(), package


@posix_only("a shell script with stand-ins for dpkg-query, apt-get and id")
def test_without_root_the_tool_script_names_what_is_missing_and_exits_0(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("dpkg-query", "exit 1"), ("apt-get", "echo apt-get must not run; exit 3"),
                       ("id", "echo 1000"), ("sudo", "exit 1")):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
        (bin_dir / name).chmod(0o755)
    run = subprocess.run(["sh", str(ROOT / "installer" / "ensure_test_tools.sh")], capture_output=True, text=True,
                         env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, timeout=60)
    assert run.returncode == 0 and "apt-get must not run" not in run.stdout + run.stderr
    assert "installing them needs root" in run.stderr and "postgresql" in run.stderr and "skip" in run.stderr
