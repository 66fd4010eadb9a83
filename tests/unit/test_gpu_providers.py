"""GPU monitoring for every vendor: AMD and Intel on Linux (sysfs, hwmon, fdinfo), any GPU on Windows
(performance counters, with NVML for an NVIDIA card's temperature and power), and which provider a machine
uses. Each provider runs on recorded data (tests/gpu_trees.py) through its small OS interface; the guard's
foreign-load detector is fed by each."""

import datetime as dt

import pytest

from support.fake_nvml import FakeProvider
from support.gpu_trees import (AMD_AND_INTEL_SYS, ARC_SYS, INTEL_LUID, NVIDIA_LUID, WINDOWS_COUNTERS, FakeCounters,
                       FakeFiles, fdinfo_amdgpu, fdinfo_i915, fdinfo_xe, link, proc_tree)
from worker_app.guard.detectors import ForeignGpuLoad
from worker_app.system import gpu
from worker_app.system.gpu import CombinedProvider, GpuMonitor, GpuUnavailable, choose_provider
from worker_app.system.gpu_linux import DrmProvider, parse_fdinfo
from worker_app.system.gpu_windows import PdhProvider, adapter_figures, adapters_in

GAME, BLENDER, SHELL = 5120, 4312, 1044


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def amd_box(game_ns: int, blender_ns: int, shell_ns: int, clock) -> DrmProvider:
    tree = {**AMD_AND_INTEL_SYS, **proc_tree({
        GAME: ("eldenring.exe", {"3": None, "41": fdinfo_amdgpu(12, game_ns, 6_291_456),
                                 "42": fdinfo_amdgpu(12, game_ns, 6_291_456)}),  # one client, two fds
        BLENDER: ("blender", {"9": fdinfo_amdgpu(13, blender_ns, 524_288)}),
        SHELL: ("gnome-shell", {"12": fdinfo_i915(3, shell_ns)}),
        1: ("systemd", {"0": None}),
    })}
    return DrmProvider(FakeFiles(tree), clock=clock)


def test_amd_and_intel_cards_are_found_and_read_from_sysfs_and_hwmon():
    provider = amd_box(0, 0, 0, Clock())
    provider.open()
    assert [(c.driver, c.pdev, c.name) for c in provider.cards] == [
        ("i915", "0000:00:02.0", "Intel GPU (8086:4680)"), ("amdgpu", "0000:03:00.0", "AMD GPU (1002:744c)")]
    radeon = provider.sample(1)
    assert (radeon.load, radeon.vram_used, radeon.vram_total) == (97, 6442450944, 25753026560)
    assert (radeon.temp_c, radeon.power_w, radeon.energy_mj) == (71, 336.0, None), \
        "edge temperature, PPT power; no energy counter (the meter integrates the power)"
    assert provider.driver().startswith("amdgpu, i915 (Linux ")


def test_each_program_s_load_comes_from_its_fdinfo_engine_time():
    clock = Clock()
    provider = amd_box(5_000_000_000, 1_000_000_000, 300_000_000, clock)
    provider.open()
    first = provider.sample(0), provider.sample(1)
    assert all(p.load == 0 for s in first for p in s.processes), "one reading gives no rate yet"
    clock.now += 2.0
    provider.files.tree.update(proc_tree({
        GAME: ("eldenring.exe", {"3": None, "41": fdinfo_amdgpu(12, 6_600_000_000, 6_291_456),
                                 "42": fdinfo_amdgpu(12, 6_600_000_000, 6_291_456)}),
        BLENDER: ("blender", {"9": fdinfo_amdgpu(13, 1_200_000_000, 524_288)}),
        SHELL: ("gnome-shell", {"12": fdinfo_i915(3, 340_000_000)}),
    }))
    intel, radeon = provider.sample(0), provider.sample(1)
    by_name = {p.name: p for p in radeon.processes}
    assert by_name["eldenring.exe"].load == 80 and by_name["eldenring.exe"].vram_bytes == 6 * 1024**3
    assert by_name["blender"].load == 10 and set(by_name) == {"eldenring.exe", "blender"}
    assert [(p.name, p.load) for p in intel.processes] == [("gnome-shell", 2)]
    assert intel.load == 2, "no busy file on i915: the busiest engine over all its programs"


def test_the_guard_sees_a_game_on_an_amd_card_and_not_our_blender_or_the_desktop():
    clock = Clock()
    provider = amd_box(0, 0, 0, clock)
    monitor = GpuMonitor(provider)
    monitor.sample_now()
    clock.now += 1.0
    provider.files.tree.update(proc_tree({
        GAME: ("eldenring.exe", {"41": fdinfo_amdgpu(12, 900_000_000, 6_291_456)}),
        BLENDER: ("blender", {"9": fdinfo_amdgpu(13, 1_000_000_000, 524_288)}),
        SHELL: ("gnome-shell", {"12": fdinfo_i915(3, 990_000_000)}),
    }))
    monitor.sample_now()
    detector = ForeignGpuLoad(lambda: monitor.latest, threshold=30, seconds=0, own_pids=lambda: {BLENDER})
    assert detector.busy() == ("eldenring.exe", 90)
    assert detector.check(dt.datetime.now()).reason == "eldenring.exe is using the GPU (90 %)"


def test_an_arc_card_has_energy_but_no_temperature_or_power_and_says_so():
    clock = Clock()
    tree = {**ARC_SYS, **proc_tree({GAME: ("cyberpunk2077.exe", {"7": fdinfo_i915(5, 10_000_000_000, "0000:03:00.0")})})}
    provider = DrmProvider(FakeFiles(tree), clock=clock)
    provider.open()
    sample = provider.sample(0)
    assert (sample.name, sample.energy_mj, sample.temp_c, sample.power_w) == ("Intel GPU (8086:56a0)", 912345678, None,
                                                                               None)
    assert sample.vram_total is None and gpu.inventory(DrmProvider(FakeFiles(tree))).missing == "temperature and power"


def test_fdinfo_lines_of_each_driver_parse():
    driver, pdev, client, usage = parse_fdinfo(fdinfo_amdgpu(12, 123, 2048))
    assert (driver, pdev, client, usage.engines["gfx"], usage.vram) == ("amdgpu", "0000:03:00.0", "12", 123, 2048 * 1024)
    assert "capacity-video" not in parse_fdinfo(fdinfo_i915(3, 5))[3].engines
    xe = parse_fdinfo(fdinfo_xe(7, 500, 1000))[3]
    assert (xe.engines["rcs"], xe.totals["rcs"], xe.vram) == (500, 1000, 1024 * 1024**2), "resident VRAM first"
    assert parse_fdinfo("pos:\t0\nflags:\t02\nmnt_id:\t10\n") is None
    assert parse_fdinfo("drm-driver:\tnouveau\ndrm-client-id:\t1\n") is None, "a driver we do not read"


def test_an_xe_program_s_load_is_its_busy_cycles_out_of_all():
    clock = Clock()
    tree = {**ARC_SYS, **proc_tree({GAME: ("game", {"4": fdinfo_xe(9, 1000, 10_000)})}),
            "/sys/class/drm/card0/device/driver": link("../../../../../../bus/pci/drivers/xe")}  # a newer kernel
    provider = DrmProvider(FakeFiles(tree), clock=clock)
    provider.open()
    provider.sample(0)
    clock.now += 1.0
    provider.files.tree.update(proc_tree({GAME: ("game", {"4": fdinfo_xe(9, 7000, 20_000)})}))
    assert [(p.name, p.load) for p in provider.sample(0).processes] == [("game", 60)]


def test_windows_counters_give_every_adapter_and_program():
    assert adapters_in(WINDOWS_COUNTERS) == [f"{NVIDIA_LUID}_0", f"{INTEL_LUID}_0"], "most dedicated memory first"
    load, used, processes = adapter_figures(WINDOWS_COUNTERS, f"{NVIDIA_LUID}_0")
    assert (load, used) == (74, 9_047_629_824), "the busiest engine, summed over programs"
    assert processes == {6120: (72, 7_415_042_048), 4312: (12, 1_203_765_248), 1044: (2, 312_475_648),
                         8812: (0, 98_304_000)}, "pid 0 (the system) is nobody's program"
    assert adapter_figures(WINDOWS_COUNTERS, f"{INTEL_LUID}_0")[2] == {1044: (1, 0)}


def test_the_windows_provider_feeds_the_guard_without_nvml():
    provider = PdhProvider(FakeCounters(WINDOWS_COUNTERS), process_name=lambda pid: {6120: "game.exe"}.get(pid, "x"))
    monitor = GpuMonitor(provider)
    snapshot = monitor.sample_now()
    assert [g.name for g in snapshot.gpus] == ["GPU 0", "GPU 1"] and snapshot.gpus[0].temp_c is None
    assert ForeignGpuLoad(lambda: monitor.latest, threshold=30, own_pids=lambda: {4312}).busy() == ("game.exe", 72)


def test_on_windows_nvml_adds_temperature_power_and_energy_to_the_counters():
    nvml = FakeProvider(name="NVIDIA GeForce RTX 4070")
    combined = CombinedProvider(PdhProvider(FakeCounters(WINDOWS_COUNTERS), process_name=lambda pid: str(pid)), nvml)
    combined.open()
    card, igpu = combined.sample(0), combined.sample(1)
    assert (card.name, card.temp_c, card.power_w, card.energy_mj) == ("NVIDIA GeForce RTX 4070", 45, 30.0, 1_000_000)
    assert card.load == 74 and {p.pid for p in card.processes} == {6120, 4312, 1044, 8812}
    assert igpu.name == "GPU 1" and igpu.power_w is None


def unavailable(problem):
    provider = FakeProvider()
    provider.fail_open = problem
    return provider


def test_each_machine_gets_the_provider_it_can_use_and_says_why():
    counters = PdhProvider(FakeCounters(WINDOWS_COUNTERS))
    chosen, why = choose_provider("win32", nvml=FakeProvider(), pdh=counters)
    assert isinstance(chosen, CombinedProvider) and "Windows counts every GPU's use" in why
    chosen, why = choose_provider("win32", nvml=unavailable("no NVIDIA driver found"), pdh=counters)
    assert chosen is counters and why == ("Windows counts every GPU's use; no NVIDIA driver found, so no temperature "
                                          "or power reading")
    radeon = amd_box(0, 0, 0, Clock())
    chosen, why = choose_provider("linux", nvml=unavailable("no NVIDIA driver found"), drm=radeon)
    assert chosen is radeon and "amdgpu" in why
    nvidia = FakeProvider()
    assert choose_provider("linux", nvml=nvidia, drm=radeon)[0] is nvidia, "NVML where it works"
    chosen, why = choose_provider("linux", nvml=unavailable("no NVIDIA driver found"), drm=DrmProvider(FakeFiles({})))
    assert why == "no NVIDIA driver found; no AMD or Intel GPU found (no amdgpu, i915 or xe device)"
    with pytest.raises(GpuUnavailable):
        DrmProvider(FakeFiles({})).open()


def test_doctor_names_the_provider_this_machine_would_use(tmp_path):
    from support.keyring_file_backend import MemoryKeyring
    from worker_app import config as config_mod
    from worker_app.doctor import run_checks
    from worker_app.system.credentials import TokenStore

    provider, why = choose_provider()
    checks = [c for c in run_checks(config_mod.Paths.default(), TokenStore(MemoryKeyring())) if c.name == "gpu"]
    assert checks, "a gpu line"
    if gpu.inventory(provider).available:
        assert gpu.provider_name(provider) in checks[0].detail and why in checks[0].detail
    else:
        assert checks[0].detail == why and not checks[0].ok
    print(checks[0].detail)


def test_video_and_copy_engines_are_no_program_s_load_on_windows():
    # OBS on NVENC, NVIDIA Instant Replay, a 4K video: busy video and copy engines, idle 3D and compute.
    from worker_app.system.gpu_windows import ENGINE
    counters = {ENGINE: {
        f"pid_7001_luid_{NVIDIA_LUID}_phys_0_eng_4_engtype_VideoEncode": 64.0,
        f"pid_7002_luid_{NVIDIA_LUID}_phys_0_eng_5_engtype_VideoDecode": 48.0,
        f"pid_7002_luid_{NVIDIA_LUID}_phys_0_eng_1_engtype_Copy": 35.0,
        f"pid_7003_luid_{NVIDIA_LUID}_phys_0_eng_3_engtype_Cuda": 41.0,
        f"pid_7004_luid_{NVIDIA_LUID}_phys_0_eng_2_engtype_Graphics_1": 33.0,
        f"pid_7005_luid_{NVIDIA_LUID}_phys_0_eng_0_engtype_High Priority 3D": 31.0,
    }}
    load, _used, processes = adapter_figures(counters, f"{NVIDIA_LUID}_0")
    assert load == 64, "the adapter's own load stays its busiest engine, as Task Manager shows it"
    assert processes == {7001: (0, None), 7002: (0, None), 7003: (41, None), 7004: (33, None), 7005: (31, None)}


def test_video_and_copy_engines_are_no_program_s_load_on_linux():
    clock = Clock()
    tree = {**AMD_AND_INTEL_SYS, **proc_tree({7001: ("obs", {"5": fdinfo_amdgpu(20, 0, 65_536)})})}
    provider = DrmProvider(FakeFiles(tree), clock=clock)
    provider.open()
    provider.sample(0), provider.sample(1)
    clock.now += 2.0
    busy_video = fdinfo_amdgpu(20, 0, 65_536).replace("drm-engine-enc:\t0 ns", "drm-engine-enc:\t1600000000 ns") \
        .replace("drm-engine-dma:\t58231 ns", "drm-engine-dma:\t900058231 ns")
    provider.files.tree.update(proc_tree({7001: ("obs", {"5": busy_video})}))
    radeon = provider.sample(0) and provider.sample(1)
    assert [(p.name, p.load) for p in radeon.processes] == [("obs", 0)], "encode and copy: no render load"
    assert radeon.load == 97, "the card's own busy figure is unchanged"


def test_foreign_load_honours_never_pause_for_and_names_the_program():
    provider = PdhProvider(FakeCounters(WINDOWS_COUNTERS), process_name=lambda pid: {6120: "obs64.exe"}.get(pid, "x"))
    monitor = GpuMonitor(provider)
    monitor.sample_now()
    now = dt.datetime(2026, 12, 7, 12, 0)
    cause = ForeignGpuLoad(lambda: monitor.latest, threshold=30, seconds=0, own_pids=lambda: {4312}).check(now)
    assert cause.reason == "obs64.exe is using the GPU (72 %)" and cause.program == "obs64.exe"
    exempt = ForeignGpuLoad(lambda: monitor.latest, threshold=30, seconds=0, own_pids=lambda: {4312},
                            not_games=["OBS64.exe"])
    assert exempt.check(now) is None and exempt.busy() is None
    wallpaper = PdhProvider(FakeCounters(WINDOWS_COUNTERS), process_name=lambda pid: {6120: "wallpaper64.exe"}.get(pid, "x"))
    monitor = GpuMonitor(wallpaper)
    monitor.sample_now()
    assert ForeignGpuLoad(lambda: monitor.latest, threshold=30, seconds=0, own_pids=lambda: {4312}).check(now) is None


class FakeGdi32:
    """D3DKMT's three calls, over {LUID (high, low): (bus, device, function)}, recorded."""

    def __init__(self, addresses):
        self.addresses, self.calls, self.handles = addresses, [], {}

    def D3DKMTOpenAdapterFromLuid(self, ref):
        opened = ref._obj
        luid = (opened.AdapterLuid.HighPart, opened.AdapterLuid.LowPart)
        self.calls.append(("open", luid))
        if luid not in self.addresses:
            return 0xC000000D  # STATUS_INVALID_PARAMETER
        opened.hAdapter = 0x40000000 + len(self.handles)
        self.handles[opened.hAdapter] = luid
        return 0

    def D3DKMTQueryAdapterInfo(self, ref):
        import ctypes
        from worker_app.system.gpu_windows import KMTQAITYPE_ADAPTERADDRESS, _ADAPTERADDRESS
        query = ref._obj
        assert query.Type == KMTQAITYPE_ADAPTERADDRESS and query.PrivateDriverDataSize == 12
        out = ctypes.cast(query.pPrivateDriverData, ctypes.POINTER(_ADAPTERADDRESS)).contents
        out.BusNumber, out.DeviceNumber, out.FunctionNumber = self.addresses[self.handles[query.hAdapter]]
        return 0

    def D3DKMTCloseAdapter(self, ref):
        self.calls.append(("close", self.handles.pop(ref._obj.hAdapter)))
        return 0


class TwoCards(FakeProvider):
    """NVML with two cards, listed in an order of its own (NVML guarantees none), each with its PCI address."""

    def __init__(self, cards):
        super().__init__(gpus=len(cards))
        self.cards = cards  # [(name, temp, "domain:bus:device.function")]

    def pci_address(self, index):
        return gpu.parse_pci_bus_id(self.cards[index][2])

    def sample(self, index, since_us=0):
        from dataclasses import replace
        name, temp, _ = self.cards[index]
        return replace(super().sample(index, since_us), name=name, temp_c=temp)


SECOND_LUID = "0x00000000_0x0000E0B7"


def two_nvidia_counters():
    from worker_app.system.gpu_windows import ADAPTER_MEMORY, ENGINE
    return {ENGINE: {f"pid_6120_luid_{NVIDIA_LUID}_phys_0_eng_0_engtype_3D": 70.0,
                     f"pid_4312_luid_{SECOND_LUID}_phys_0_eng_3_engtype_Compute_0": 95.0},
            ADAPTER_MEMORY: {f"luid_{NVIDIA_LUID}_phys_0": 9e9, f"luid_{SECOND_LUID}_phys_0": 2e9}}


def test_two_nvidia_cards_are_paired_with_their_adapters_by_pci_address():
    from worker_app.system.gpu_windows import adapter_address
    gdi32 = FakeGdi32({(0, 0xD1C5): (1, 0, 0), (0, 0xE0B7): (8, 0, 0)})
    assert adapter_address(NVIDIA_LUID, gdi32) == (0, 1, 0, 0)
    assert [c[0] for c in gdi32.calls] == ["open", "close"], "every adapter opened is closed"
    # NVML lists the render card (bus 8) first; the counters list the game's card (bus 1, most memory) first.
    nvml = TwoCards([("RTX 4090 (render)", 61, "00000000:08:00.0"), ("RTX 3060 (display)", 48, "00000000:01:00.0")])
    pdh = PdhProvider(FakeCounters(two_nvidia_counters()), process_name=str,
                      address_of=lambda luid: adapter_address(luid, gdi32))
    combined = CombinedProvider(pdh, nvml)
    combined.open()
    assert combined.pairing == "pci"
    display, render = combined.sample(0), combined.sample(1)
    assert (display.name, display.temp_c, display.load) == ("RTX 3060 (display)", 48, 70)
    assert (render.name, render.temp_c, render.load) == ("RTX 4090 (render)", 61, 95)


def test_without_pci_addresses_the_pairing_is_a_guess_and_doctor_says_so(monkeypatch, tmp_path):
    nvml = TwoCards([("RTX 4090", 61, "00000000:08:00.0"), ("RTX 3060", 48, "00000000:01:00.0")])
    pdh = PdhProvider(FakeCounters(two_nvidia_counters()), process_name=str, address_of=lambda luid: None)
    combined = CombinedProvider(pdh, nvml)
    combined.open()
    assert combined.pairing == "guess"
    from worker_app import doctor
    monkeypatch.setattr(gpu, "choose_provider", lambda: (combined, "Windows counts every GPU's use"))
    from support.keyring_file_backend import MemoryKeyring
    from worker_app.system.credentials import TokenStore
    checks = [c for c in doctor.run_checks(doctor.config_mod.Paths.default(), tokens=TokenStore(MemoryKeyring()))
              if c.name == "gpu"]
    assert any("which NVIDIA card is which Windows adapter is a guess" in c.detail and not c.ok for c in checks)


def test_a_pdh_error_reads_as_microsoft_writes_it():
    from worker_app.system.gpu_windows import Counters

    class Pdh:  # PdhOpenQueryW returns a PDH_STATUS, a LONG: PDH_CSTATUS_NO_OBJECT comes back negative
        def PdhOpenQueryW(self, source, user, query):
            return 0xC0000BB8 - 2**32

    counters = Counters(Pdh())
    with pytest.raises(gpu.GpuUnavailable, match=r"PDH error 0xC0000BB8\)"):
        counters.open()
