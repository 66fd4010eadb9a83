"""Pause detectors and the guard: real processes where they can exist here, fakes at the OS edges."""

import datetime as dt
import os
import time

import psutil
import pytest

from support.game_standin import start_game
from support.windows import steam_install

from support.fake_nvml import FakeProvider
from worker_app import guard as G
from worker_app.guard.energy import EnergyMeter, Ledger
from worker_app.system import desktop
from worker_app.system.gpu import GpuMonitor, GpuProcess, GpuSnapshot, inventory

NOW = dt.datetime(2026, 11, 26, 12, 0)  # a Thursday


@pytest.fixture
def game(tmp_path):
    """Starts a harmless program under a game's name (tests/game_standin.py), and ends it afterwards."""
    started = []

    def start(name, folder=None):
        proc = start_game(folder or tmp_path, name, 60)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def test_a_game_by_its_process_name(game):
    detector = G.GameDetector(names=["eldenring.exe"])
    assert detector.check(NOW) is None
    proc = game("eldenring.exe")
    assert detector.check(NOW).reason == "eldenring.exe is running"
    proc.kill()
    proc.wait()
    assert detector.check(NOW) is None


def test_a_game_by_where_it_is_installed(game, tmp_path):
    detector = G.GameDetector(names=[], folders=[tmp_path / "D-Games"])
    game("SomeIndie.bin", tmp_path / "lib" / "steamapps" / "common" / "Some Indie")
    assert detector.check(NOW).reason == "SomeIndie.bin is running"
    detector = G.GameDetector(names=[], folders=[tmp_path / "D-Games"])
    assert detector.check(NOW).reason == "SomeIndie.bin is running"


def test_own_blender_is_never_a_game_even_from_steam(game, tmp_path):
    proc = game("blender", tmp_path / "steamapps" / "common" / "Blender")
    by_pid = G.GameDetector(names=[], own_pids=lambda: {proc.pid})
    assert by_pid.check(NOW) is None
    by_path = G.GameDetector(names=[], own_paths=[str(tmp_path / "steamapps" / "common" / "Blender" / "blender")])
    assert by_path.check(NOW) is None


class FakeTable:
    """The process table as the detector reads it: pid -> (name, executable), and each one's parent."""

    def __init__(self, processes: dict, parents: dict | None = None):
        self.processes = processes
        self.parents = parents or {}

    def scan(self):
        return self.processes


class Steam(desktop.SteamStatus):
    """Steam as the detector asks it, on any OS: the app it says runs (its name and folder: unknown)."""

    def __init__(self, app_id):
        self.app_id = app_id

    def running_app_id(self):
        return self.app_id


def test_steam_says_a_game_runs_while_steam_runs():
    steam_running = FakeTable({10: ("steam.exe", "C:/Program Files (x86)/Steam/steam.exe")})
    assert G.GameDetector(names=[], steam=Steam(1245620), table=steam_running).check(NOW).reason == \
        "Steam game 1245620 is running"
    # Steam crashed and left its RunningAppID behind: no game.
    assert G.GameDetector(names=[], steam=Steam(1245620), table=FakeTable({})).check(NOW) is None
    # Wallpaper Engine sets RunningAppID too: a tool, not a game.
    assert G.GameDetector(names=[], steam=Steam(431960), table=steam_running).check(NOW) is None


@pytest.mark.parametrize("name, exe", [
    ("EpicGamesLauncher.exe", "C:/Program Files (x86)/Epic Games/Launcher/Portal/Binaries/Win64/EpicGamesLauncher.exe"),
    ("EpicWebHelper.exe", "C:/Program Files (x86)/Epic Games/Launcher/Engine/Binaries/Win64/EpicWebHelper.exe"),
    ("Battle.net.exe", "C:/Program Files (x86)/Battle.net/Battle.net.exe"),
    ("Agent.exe", "C:/ProgramData/Battle.net/Agent/Agent.9001/Agent.exe"),
    ("RiotClientServices.exe", "C:/Riot Games/Riot Client/RiotClientServices.exe"),
    ("LeagueClient.exe", "C:/Riot Games/League of Legends/LeagueClient.exe"),
    ("wallpaper64.exe", "D:/SteamLibrary/steamapps/common/wallpaper_engine/wallpaper64.exe"),
    ("steamwebhelper.exe", "C:/Program Files (x86)/Steam/bin/cef/cef.win7x64/steamwebhelper.exe"),
])
def test_launchers_and_tools_kept_open_all_day_are_no_games(name, exe):
    detector = G.GameDetector(table=FakeTable({100: (name, exe)}), steam=Steam(None))
    assert detector.check(NOW) is None, name


@pytest.mark.parametrize("name, exe", [
    ("League of Legends.exe", "C:/Riot Games/League of Legends/Game/League of Legends.exe"),
    ("VALORANT-Win64-Shipping.exe", "C:/Riot Games/VALORANT/live/ShooterGame/Binaries/Win64/VALORANT-Win64-Shipping.exe"),
    ("FortniteClient-Win64-Shipping.exe", "C:/Program Files/Epic Games/Fortnite/FortniteGame/Binaries/Win64/x.exe"),
    ("Overwatch.exe", "C:/Program Files (x86)/Overwatch/_retail_/Overwatch.exe"),
    ("hollow_knight.exe", "D:/SteamLibrary/steamapps/common/Hollow Knight/hollow_knight.exe"),
])
def test_the_games_those_launchers_start_still_pause(name, exe):
    cause = G.GameDetector(table=FakeTable({100: (name, exe)}), steam=Steam(None)).check(NOW)
    assert cause is not None and cause.program == name


def test_the_owner_can_say_a_program_is_no_game():
    table = FakeTable({100: ("MyFlightTools.exe", "D:/SteamLibrary/steamapps/common/Flight/MyFlightTools.exe")})
    assert G.GameDetector(table=table, steam=Steam(None)).check(NOW).program == "MyFlightTools.exe"
    assert G.GameDetector(table=table, steam=Steam(None), not_games=["myflighttools.exe"]).check(NOW) is None


def test_steam_registry_backend():
    from worker_app.system.desktop import WindowsSteamStatus

    class Registry:
        HKEY_CURRENT_USER = "HKCU"

        def __init__(self, value):
            self.value = value

        def OpenKey(self, root, path):
            import contextlib
            assert path == r"Software\Valve\Steam"
            return contextlib.nullcontext()

        def QueryValueEx(self, key, name):
            assert name == "RunningAppID"
            return self.value, 4

    assert WindowsSteamStatus(Registry(1245620)).running_app_id() == 1245620
    assert WindowsSteamStatus(Registry(0)).running_app_id() is None


def snapshot_with(*processes, load=50, temp=60, power=100.0):
    from worker_app.system.gpu import GpuSample
    return GpuSnapshot(time.time(), (GpuSample(0, "RTX", load=load, temp_c=temp, power_w=power,
                                               processes=tuple(processes)),))


def test_foreign_gpu_load_needs_to_last():
    now = [100.0]
    snap = [snapshot_with(GpuProcess(4242, "chrome.exe", "graphics", load=55),
                          GpuProcess(77, "dwm.exe", "graphics", load=90),
                          GpuProcess(88, "blender", "compute", load=99))]
    detector = G.ForeignGpuLoad(lambda: snap[0], threshold=30, seconds=5, own_pids=lambda: {88},
                                clock=lambda: now[0])
    assert detector.check(NOW) is None  # just started
    now[0] += 6
    assert detector.check(NOW).reason == "chrome.exe is using the GPU (55 %)"
    snap[0] = snapshot_with(GpuProcess(4242, "chrome.exe", "graphics", load=10))
    assert detector.check(NOW) is None
    snap[0] = GpuSnapshot(time.time(), problem="no NVIDIA GPU or driver")
    assert detector.check(NOW) is None


def test_foreign_load_without_per_process_figures_is_the_total_while_we_do_not_use_the_gpu():
    """Windows often gives no per-process load: the GPU's load is someone else's while our Blender is not on it."""
    game = GpuProcess(4242, "game.exe", "graphics", vram_bytes=6 * 1024**3)
    desktop = GpuProcess(77, "dwm.exe", "graphics", vram_bytes=10 * 1024**3)
    detector = G.ForeignGpuLoad(lambda: snapshot_with(game, desktop, load=80), threshold=30, seconds=0,
                                own_pids=lambda: set())
    assert detector.busy() == ("game.exe", 80)
    ours = GpuProcess(88, "blender", "compute")
    while_rendering = G.ForeignGpuLoad(lambda: snapshot_with(game, ours, load=99), threshold=30, seconds=0,
                                       own_pids=lambda: {88})
    assert while_rendering.busy() is None, "our own render's load is not a game's"


def test_full_screen_is_only_a_hint():
    class FullScreen:
        def full_screen(self):
            return True

    class Idle:
        def __init__(self, seconds):
            self.seconds = seconds

        def idle_seconds(self):
            return self.seconds

    quiet = G.ForeignGpuLoad(lambda: snapshot_with(), threshold=30)
    assert G.FullScreenHint(FullScreen(), quiet, Idle(600)).check(NOW) is None  # a video left running
    loaded = G.ForeignGpuLoad(lambda: snapshot_with(GpuProcess(5, "game.exe", "graphics", load=15)), 30)
    assert "game.exe" in G.FullScreenHint(FullScreen(), loaded, Idle(600)).check(NOW).reason
    assert G.FullScreenHint(FullScreen(), quiet, Idle(3)).check(NOW) is not None
    assert loaded.threshold == 30


def test_owner_active_and_thermal():
    class Idle:
        def idle_seconds(self):
            return 10.0
    assert G.OwnerActive(120, Idle()).check(NOW).reason == "you are using the PC"
    assert G.OwnerActive(5, Idle()).check(NOW) is None
    hot = G.ThermalGuard(lambda: snapshot_with(temp=88), max_temp_c=85)
    assert hot.check(NOW).reason == "RTX at 88 °C (limit 85 °C)"
    thirsty = G.ThermalGuard(lambda: snapshot_with(power=320.0), max_temp_c=0, max_power_w=300)
    assert thirsty.check(NOW).reason == "RTX draws 320 W (limit 300 W)"
    assert G.ThermalGuard(lambda: snapshot_with(temp=70), max_temp_c=85).check(NOW) is None


@pytest.mark.parametrize("window, when, inside", [
    ("mon-fri 01:00-08:00", dt.datetime(2026, 11, 26, 3, 0), True),  # Thursday night
    ("mon-fri 01:00-08:00", dt.datetime(2026, 11, 28, 3, 0), False),  # Saturday
    ("22:00-06:00", dt.datetime(2026, 11, 26, 23, 30), True),
    ("22:00-06:00", dt.datetime(2026, 11, 27, 5, 59), True),  # after midnight
    ("22:00-06:00", dt.datetime(2026, 11, 27, 6, 0), False),
    ("fri 22:00-06:00", dt.datetime(2026, 11, 29, 1, 0), False),  # Sunday 01:00 belongs to Saturday
    ("fri 22:00-06:00", dt.datetime(2026, 11, 28, 1, 0), True),  # Saturday 01:00 belongs to Friday
    ("sat,sun 00:00-24:00", dt.datetime(2026, 11, 29, 23, 59), True),
    ("weekends 10:00-12:00", dt.datetime(2026, 11, 26, 11, 0), False),
])
def test_schedule_windows(window, when, inside):
    assert G.Window.parse(window).contains(when) is inside


def test_schedule_across_midnight_says_until_when():
    schedule = G.Schedule(render_only=["22:00-06:00"], never=["mon 00:00-02:00"])
    cause = schedule.check(dt.datetime(2026, 11, 26, 21, 15))
    assert cause.reason == "paused until 22:00 (schedule)" and cause.until == dt.datetime(2026, 11, 26, 22, 0)
    assert schedule.check(dt.datetime(2026, 11, 27, 2, 0)) is None  # Friday 02:00, inside since Thursday 22:00
    monday = schedule.check(dt.datetime(2026, 11, 30, 1, 0))  # allowed window, but "never" wins
    assert monday.until == dt.datetime(2026, 11, 30, 2, 0)
    assert G.Schedule(never=["18:00-23:00"]).check(dt.datetime(2026, 11, 26, 19, 0)).reason == \
        "paused until 23:00 (schedule)"


@pytest.mark.parametrize("text", ["25:00-26:00", "mon-fry 01:00-02:00", "01:00", "1-2", "10:60-11:00"])
def test_bad_windows_are_refused(text):
    with pytest.raises(ValueError):
        G.Window.parse(text)


def test_manual_pause_until_and_indefinitely(tmp_path):
    clock = [1_800_000_000.0]
    pause = G.ManualPause(tmp_path / "pause.json", clock=lambda: clock[0])
    now = dt.datetime.fromtimestamp(clock[0])
    assert pause.check(now) is None
    pause.pause(seconds=1800)
    cause = pause.check(now)
    assert cause.kind == "manual" and cause.reason.startswith("paused by you until ")
    later = dt.datetime.fromtimestamp(clock[0] + 1801)
    assert pause.check(later) is None and not (tmp_path / "pause.json").exists()
    pause.pause()
    assert pause.check(later).reason == "paused until you resume"
    pause.resume()
    assert pause.check(later) is None
    assert G.tomorrow_morning(dt.datetime(2026, 11, 26, 23, 0)) == dt.datetime(2026, 11, 27, 8, 0)


class Switch:
    def __init__(self, cause=None):
        self.cause = cause

    def check(self, now):
        return self.cause


def test_guard_holds_off_before_resuming():
    clock = [0.0]
    game = Switch(G.Cause("game", "eldenring.exe is running"))
    decisions = []
    guard = G.Guard([game], hold_off_s=60, clock=lambda: clock[0], on_change=decisions.append)
    assert guard.evaluate().reason == "Paused: eldenring.exe is running"
    game.cause = None  # a loading screen: the game's process is gone for a moment
    clock[0] = 10
    held = guard.evaluate()
    assert held.paused and held.resume_at == 60 and held.reason.startswith("Resuming in 50 s")
    clock[0] = 59
    assert guard.evaluate().paused
    clock[0] = 61
    assert guard.evaluate().paused is False
    assert [d.paused for d in decisions] == [True, True, False]


def test_manual_and_schedule_resume_without_hold_off():
    clock = [0.0]
    manual = Switch(G.Cause("manual", "paused until you resume", sticky=False))
    guard = G.Guard([manual], hold_off_s=60, clock=lambda: clock[0])
    assert guard.evaluate().paused
    manual.cause = None
    assert guard.evaluate().paused is False


def test_an_owner_command_is_decided_at_once_on_the_guards_own_thread():
    """The tray's pause and resume ask the running guard to check now: the decision comes within a tick, not
    at the next interval, and is made on the guard's thread, its one writer; a resume drops the hold-off."""
    import threading

    from support.harness import wait_until

    clock = [0.0]
    game = Switch(G.Cause("game", "eldenring.exe is running"))
    threads = []

    class Watched(Switch):
        def check(self, now):
            threads.append(threading.current_thread().name)
            return super().check(now)

    manual = Watched(None)
    guard = G.Guard([game, manual], hold_off_s=60, interval=3600, clock=lambda: clock[0]).start()
    try:
        wait_until(lambda: guard.decision.paused, 5)
        manual.cause = G.Cause("manual", "paused for 30 minutes", sticky=False)
        game.cause = None
        threads.clear()
        guard.check_now()
        wait_until(lambda: "paused for 30 minutes" in guard.decision.reason, 5)
        assert set(threads) == {"guard"}
        manual.cause = None
        guard.check_now()
        wait_until(lambda: threads.count("guard") >= 2 and guard.decision.resume_at is not None, 5)
        assert guard.decision.paused, "the game's hold-off still holds without the owner's resume"
        guard.check_now(owner_resumed=True)
        wait_until(lambda: not guard.decision.paused, 5)
    finally:
        guard.stop()


def test_a_broken_detector_does_not_stop_the_others():
    class Broken:
        def check(self, now):
            raise RuntimeError("boom")
    guard = G.Guard([Broken(), Switch(G.Cause("thermal", "hot"))])
    assert guard.evaluate().reason == "Paused: hot"


def test_monitor_without_nvidia_says_so_and_keeps_going():
    provider = FakeProvider()
    provider.fail_open = "no NVIDIA GPU or driver (NVML Shared Library Not Found)"
    monitor = GpuMonitor(provider, interval=0.05)
    snapshot = monitor.sample_now()
    assert not snapshot.available and "no NVIDIA GPU" in snapshot.problem
    assert inventory(provider).problem.startswith("no NVIDIA GPU")


def test_monitor_with_a_gpu_and_one_unsupported_figure():
    provider = FakeProvider()
    provider.missing = {"energy_mj", "power_w"}  # an older GPU
    samples = []
    monitor = GpuMonitor(provider, interval=0.05, on_sample=samples.append).start()
    time.sleep(0.3)
    monitor.stop()
    assert len(samples) >= 3
    gpu = samples[-1].gpus[0]
    assert gpu.load == 0 and gpu.temp_c == 45 and gpu.energy_mj is None and gpu.power_w is None
    assert gpu.figures() == {"index": 0, "name": "NVIDIA GeForce RTX 4070", "load": 0,
                             "vram_used": 2 * 1024**3, "vram_total": 12 * 1024**3, "temp_c": 45}
    assert not provider.opened, "NVML is shut down when the monitor stops"


def test_real_nvml_provider_reports_no_gpu_here():
    """This machine has no NVIDIA driver: the real provider must say so, not crash."""
    inv = inventory()
    if inv.available:
        pytest.skip("an NVIDIA GPU is present")
    assert "NVIDIA" in inv.problem or "nvidia-ml-py" in inv.problem


def test_energy_from_the_counter_or_from_power():
    provider = FakeProvider()
    monitor = GpuMonitor(provider)
    meter = EnergyMeter(monitor.sample_now())
    provider.energy_mj += 36_000_000  # 36 kJ = 10 Wh
    meter.add(monitor.sample_now())
    assert meter.reading().source == "counter" and meter.reading().wh == pytest.approx(10.0)

    provider = FakeProvider(energy=False)
    from worker_app.system.gpu import GpuSample
    meter = EnergyMeter()
    for t, watts in ((0.0, 200.0), (1800.0, 200.0), (3600.0, 100.0)):
        meter.add(GpuSnapshot(t, (GpuSample(0, "RTX", power_w=watts),)))
    # 200 W for half an hour, then 200 -> 100 W over the next half: 100 Wh + 75 Wh.
    assert meter.reading().source == "power" and meter.reading().wh == pytest.approx(175.0)
    assert EnergyMeter().reading().wh is None


def test_ledger_totals_per_day_and_month(tmp_path):
    clock = [dt.datetime(2026, 11, 1, 10).timestamp()]
    ledger = Ledger(tmp_path / "stats.sqlite3", clock=lambda: clock[0])
    ledger.record("1", "http://s", "done", 60, 50, 20.0)
    clock[0] = dt.datetime(2026, 11, 26, 9).timestamp()
    ledger.record("2", "http://s", "done", 120, 100, 30.0)
    ledger.record("3", "http://s", "released", 10, 5, None)
    ledger.record("4", "http://s", "released", 10, 5, 2.0)  # paused for a game, then rendered again
    ledger.record("4", "http://s", "done", 60, 50, 10.0)
    summary = ledger.summary(dt.datetime(2026, 11, 26, 12))
    # A job counts once, when it is done; the energy of every attempt counts.
    assert summary["today"].jobs == 2 and summary["today"].energy_wh == pytest.approx(42.0)
    assert summary["this month"].jobs == 3 and summary["this month"].energy_wh == pytest.approx(62.0)
    assert summary["this month"].cost(0.30) == pytest.approx(0.0186)


def test_disk_nearly_full_stops_claiming(tmp_path):
    low = G.DiskSpace(tmp_path / "data" / "not-yet", 2 * 1024**3, usage=lambda p: 1.2 * 1024**3)
    assert low.check(NOW).reason == "the disk is nearly full (1.2 GB free, 2 GB needed)"
    assert G.DiskSpace(tmp_path, 2 * 1024**3, usage=lambda p: 50 * 1024**3).check(NOW) is None
    assert G.DiskSpace(tmp_path, 1).check(NOW) is None  # the real disk here has a byte free


class FakePynvml:
    """The pynvml functions NvmlProvider calls, with an older GPU that lacks the energy counter."""
    NVML_TEMPERATURE_GPU = 0

    class NVMLError(Exception):
        pass

    class _Proc:
        def __init__(self, pid, used):
            self.pid, self.usedGpuMemory = pid, used

    class _Util:
        def __init__(self, pid, sm):
            self.pid, self.smUtil = pid, sm

    def __init__(self):
        self.shutdown = False

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        self.shutdown = True

    def nvmlSystemGetDriverVersion(self):
        return b"535.104"

    def nvmlDeviceGetCount(self):
        return 1

    def nvmlDeviceGetHandleByIndex(self, index):
        return f"gpu{index}"

    def nvmlDeviceGetName(self, handle):
        return b"NVIDIA GeForce GTX 1060"

    def nvmlDeviceGetMemoryInfo(self, handle):
        return type("Mem", (), {"used": 1024**3, "total": 6 * 1024**3})()

    def nvmlDeviceGetUtilizationRates(self, handle):
        return type("Util", (), {"gpu": 64})()

    def nvmlDeviceGetTemperature(self, handle, sensor):
        return 66

    def nvmlDeviceGetPowerUsage(self, handle):
        return 95_500

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        raise self.NVMLError("Not Supported")  # Pascal: no energy counter

    def nvmlDeviceGetProcessUtilization(self, handle, since):
        return [self._Util(os.getpid(), 12)]

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return [self._Proc(os.getpid(), 512 * 1024**2)]

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle):
        raise self.NVMLError("Not Supported")


def test_nvml_provider_reads_every_figure_and_survives_unsupported_calls():
    from worker_app.system.gpu import NvmlProvider

    nvml = FakePynvml()
    monitor = GpuMonitor(NvmlProvider(nvml))
    gpu = monitor.sample_now().gpus[0]
    assert (gpu.name, gpu.load, gpu.temp_c, gpu.power_w, gpu.vram_total) == (
        "NVIDIA GeForce GTX 1060", 64, 66, 95.5, 6 * 1024**3)
    assert gpu.energy_mj is None  # one figure missing, the others there
    (proc,) = gpu.processes
    assert proc.pid == os.getpid() and proc.kind == "compute" and proc.load == 12
    assert proc.name == psutil.Process().name()
    monitor.finished()
    assert nvml.shutdown
    assert inventory(NvmlProvider(FakePynvml())).gpus == [{"name": "NVIDIA GeForce GTX 1060",
                                                           "vram_bytes": 6 * 1024**3}]


def test_windows_not_available_memory_is_no_figure():
    """On Windows (WDDM) NVML gives 2**64 - 1 for a process's memory: no figure, not 16 EiB."""
    from worker_app.system.gpu import NvmlProvider

    nvml = FakePynvml()
    nvml.nvmlDeviceGetComputeRunningProcesses = lambda handle: [FakePynvml._Proc(os.getpid(), 2**64 - 1)]
    (proc,) = GpuMonitor(NvmlProvider(nvml)).sample_now().gpus[0].processes
    assert proc.vram_bytes is None


def test_a_process_seen_before_its_exec_is_looked_at_again(monkeypatch):
    """Between fork and exec a new process still has its parent's name: a young process is read again."""
    names = {4242: "launcher.exe"}

    class Proc:
        def __init__(self, pid):
            self.pid = pid

        def name(self):
            return names[self.pid]

        def exe(self):
            return f"C:/Games/{names[self.pid]}"

        def create_time(self):
            return 1000.0

        def ppid(self):
            return 1

    monkeypatch.setattr(G.detectors.psutil, "pids", lambda: [4242])
    monkeypatch.setattr(G.detectors.psutil, "Process", Proc)
    clock = [1000.5]
    table = G.ProcessTable(clock=lambda: clock[0])
    assert table.scan()[4242][0] == "launcher.exe"
    names[4242] = "eldenring.exe"  # the exec happened
    assert table.scan()[4242][0] == "eldenring.exe"
    clock[0] = 1010.0
    names[4242] = "renamed.exe"
    table.scan()
    assert table.scan()[4242][0] == "eldenring.exe", "an old process is not looked up again"


@pytest.mark.parametrize("nvml, said", [
    ("NVML Shared Library Not Found", "no NVIDIA driver found"),
    ("Driver Not Loaded", "the NVIDIA driver is not loaded (restart the PC after installing it)"),
    ("Unknown Error", "no NVIDIA GPU or driver found"),
])
def test_nvml_s_words_become_the_tray_s(nvml, said):
    from worker_app.system.gpu import nvml_problem
    assert nvml_problem(nvml) == said


def test_steam_names_the_running_app_and_finds_its_folder_in_any_library(tmp_path):
    from worker_app.system.desktop import WindowsSteamStatus
    registry, folder = steam_install(tmp_path, 993090, "Lossless Scaling", "Lossless Scaling")
    info = WindowsSteamStatus(registry).app_info(993090)
    assert (info.name, info.folder) == ("Lossless Scaling", str(folder))
    assert WindowsSteamStatus(registry).app_info(12345).folder == ""  # no manifest: no folder, no error


def test_a_steam_app_the_owner_exempted_pauses_nothing_and_one_not_exempted_is_named(tmp_path):
    from worker_app.system.desktop import WindowsSteamStatus
    registry, folder = steam_install(tmp_path, 993090, "Lossless Scaling", "Lossless Scaling")
    steam = WindowsSteamStatus(registry)
    table = FakeTable({10: ("steam.exe", "C:/Program Files (x86)/Steam/steam.exe"),
                       20: ("LosslessScaling.exe", str(folder / "LosslessScaling.exe"))})
    cause = G.GameDetector(names=[], table=table, steam=steam).check(NOW)
    assert cause.reason == "LosslessScaling.exe is running" and cause.program == "LosslessScaling.exe"
    # "Never pause for LosslessScaling.exe": neither its process nor Steam's RunningAppID pauses any more.
    assert G.GameDetector(names=[], table=table, steam=steam, not_games=["LosslessScaling.exe"]).check(NOW) is None
    # An app whose programs are not found (started elsewhere) is named by Steam's name, which exempts it too.
    steam_only = FakeTable({10: ("steam.exe", "C:/Program Files (x86)/Steam/steam.exe")})
    cause = G.GameDetector(names=[], table=steam_only, steam=steam).check(NOW)
    assert cause.reason == "Lossless Scaling is running (Steam)" and cause.program == "Lossless Scaling"
    assert G.GameDetector(names=[], table=steam_only, steam=steam, not_games=["Lossless Scaling"]).check(NOW) is None


def test_blender_started_from_steam_is_no_steam_game(tmp_path):
    from worker_app.system.desktop import WindowsSteamStatus
    registry, folder = steam_install(tmp_path, 365670, "Blender", "Blender")
    table = FakeTable({10: ("steam.exe", "C:/Program Files (x86)/Steam/steam.exe"),
                       30: ("blender.exe", str(folder / "blender.exe"))})
    detector = G.GameDetector(names=[], table=table, steam=WindowsSteamStatus(registry), own_pids=lambda: {30})
    assert detector.check(NOW) is None


def test_minecraft_bedrock_java_and_game_pass_games_are_games(tmp_path):
    bedrock = FakeTable({5: ("Minecraft.Windows.exe", "C:/XboxGames/Minecraft/Content/Minecraft.Windows.exe")})
    assert G.GameDetector(table=bedrock, steam=Steam(None)).check(NOW).program == "Minecraft.Windows.exe"
    # Java Edition: javaw.exe is a game when a Minecraft launcher started it, and only then.
    java = {7: ("MinecraftLauncher.exe", "C:/Program Files (x86)/Minecraft Launcher/MinecraftLauncher.exe"),
            8: ("javaw.exe", "C:/Users/kim/AppData/Roaming/.minecraft/runtime/java-runtime-gamma/bin/javaw.exe"),
            9: ("idea64.exe", "C:/Program Files/JetBrains/IDEA/bin/idea64.exe"),
            10: ("javaw.exe", "C:/Program Files/Java/jdk-21/bin/javaw.exe")}
    cause = G.GameDetector(table=FakeTable(java, {8: 7, 10: 9}), steam=Steam(None)).check(NOW)
    assert cause.reason == "javaw.exe is running"
    ide_only = FakeTable({k: v for k, v in java.items() if k in (9, 10)}, {10: 9})
    assert G.GameDetector(table=ide_only, steam=Steam(None)).check(NOW) is None, "an IDE's Java is no game"
    # Game Pass: a package under WindowsApps is a game when it carries MicrosoftGame.config.
    apps = tmp_path / "Program Files" / "WindowsApps"
    game = apps / "Contoso.HaloInfinite_1.2.3.0_x64__8wekyb3d8bbwe"
    music = apps / "SpotifyAB.SpotifyMusic_1.2.3.0_x86__zpdnekdrzrea0"
    for package in (game, music):
        package.mkdir(parents=True)
    (game / "MicrosoftGame.config").write_text("<Game/>", encoding="utf-8")
    store = FakeTable({11: ("Spotify.exe", str(music / "Spotify.exe")), 12: ("HaloInfinite.exe", str(game / "HaloInfinite.exe"))})
    assert G.GameDetector(table=store, steam=Steam(None)).check(NOW).program == "HaloInfinite.exe"
    assert G.GameDetector(table=FakeTable({11: store.processes[11]}), steam=Steam(None)).check(NOW) is None


def test_the_real_process_table_knows_each_process_s_parent():
    import os
    table = G.ProcessTable()
    table.scan()
    assert table.parents[os.getpid()] == os.getppid()


def test_paths_are_resolved_once_not_every_second(monkeypatch):
    calls = []
    real = G.detectors.os.path.realpath
    monkeypatch.setattr(G.detectors.os.path, "realpath", lambda p: calls.append(p) or real(p))
    G.detectors.resolved.cache_clear()
    table = FakeTable({i: (f"tool{i}.exe", f"C:/Tools/tool{i}.exe") for i in range(300)})
    detector = G.GameDetector(names=[], table=table, steam=Steam(None), own_paths=["C:/Blender/blender.exe"])
    for _ in range(10):  # ten guard ticks
        assert detector.check(NOW) is None
    assert len(calls) == 301, f"{len(calls)} realpath calls for 300 processes over 10 ticks"


def test_the_pause_kinds_the_worker_reports_are_the_protocols():
    from worker_app import protocol as P
    from worker_app.guard.causes import PauseKind

    assert tuple(kind.value for kind in PauseKind) == P.PAUSE_KINDS
