"""The GPUs, behind a small provider interface, one provider chosen per machine (``choose_provider``):

- NVML (``pynvml`` from the nvidia-ml-py distribution) for NVIDIA cards, on Linux and Windows;
- on Windows, the performance counters Task Manager reads, for every vendor (``gpu_windows.py``), with NVML
  adding temperature, power and energy on an NVIDIA card;
- on Linux, the kernel's amdgpu, i915 and xe drivers through sysfs, hwmon and fdinfo (``gpu_linux.py``).

``GpuMonitor`` samples every GPU on its own thread: load, VRAM, temperature, power, the energy counter
and the processes on the GPU. A figure a GPU does not give stays empty (the tray and doctor say so), never a
made-up number; without any provider homefarm says so plainly and carries on. Tests use fake providers and
recorded real data through the same interfaces.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from dataclasses import dataclass, field, replace

from worker_app.periodic import Periodic

log = logging.getLogger("homefarm.gpu")


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    name: str
    kind: str  # "compute" or "graphics"
    vram_bytes: int | None = None
    load: int | None = None  # this process's share of the GPU's time, percent, where NVML says


@dataclass(frozen=True)
class GpuSample:
    index: int
    name: str
    load: int | None = None  # percent
    vram_used: int | None = None
    vram_total: int | None = None
    temp_c: int | None = None
    power_w: float | None = None
    energy_mj: int | None = None  # total since the driver loaded, millijoules
    processes: tuple[GpuProcess, ...] = ()

    def figures(self) -> dict:
        """The figures a heartbeat carries, without the empty ones."""
        out = {"index": self.index, "name": self.name, "load": self.load, "vram_used": self.vram_used,
               "vram_total": self.vram_total, "temp_c": self.temp_c,
               "power_w": None if self.power_w is None else round(self.power_w, 1)}
        return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True)
class GpuSnapshot:
    time: float
    gpus: tuple[GpuSample, ...] = ()
    problem: str | None = None  # "no NVIDIA GPU or driver (...)" when NVML gives nothing

    @property
    def available(self) -> bool:
        return self.problem is None


@dataclass
class GpuInventory:
    gpus: list[dict] = field(default_factory=list)  # [{"name", "vram_bytes", "uuid"}]
    driver: str | None = None
    problem: str | None = None  # why no provider gave anything, in words
    missing: str = ""  # the figures the first GPU does not give, in words ("temperature and power")

    @property
    def available(self) -> bool:
        return self.problem is None


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlProvider:
    """The real thing: NVML through pynvml. Every method may raise ``GpuUnavailable``."""

    label = "NVML (NVIDIA)"

    def __init__(self, nvml=None):
        self._nvml = nvml
        self._names: dict[int, str] = {}

    @property
    def nvml(self):
        if self._nvml is None:
            import pynvml
            self._nvml = pynvml
        return self._nvml

    def open(self) -> None:
        try:
            self.nvml.nvmlInit()
        except ImportError:
            raise GpuUnavailable("nvidia-ml-py is not installed") from None
        except self.nvml.NVMLError as error:
            log.info("NVML did not start: %s", _text(error))
            raise GpuUnavailable(nvml_problem(_text(error))) from None

    def close(self) -> None:
        try:
            self.nvml.nvmlShutdown()
        except self.nvml.NVMLError:
            pass

    def driver(self) -> str | None:
        return self._try(self.nvml.nvmlSystemGetDriverVersion, _text)

    def count(self) -> int:
        try:
            return self.nvml.nvmlDeviceGetCount()
        except self.nvml.NVMLError as error:
            raise GpuUnavailable(f"NVML failed: {_text(error)}") from None

    def pci_address(self, index: int) -> tuple[int, int, int, int] | None:
        """The card's PCI domain, bus, device and function (``nvmlDeviceGetPciInfo``), to pair it with what
        another source lists; None where NVML does not say."""
        try:
            info = self.nvml.nvmlDeviceGetPciInfo(self.nvml.nvmlDeviceGetHandleByIndex(index))
        except self.nvml.NVMLError:
            return None
        return parse_pci_bus_id(_text(info.busId))

    def _try(self, call, convert=lambda v: v, *args):
        """One figure: None where this GPU or driver does not support the call."""
        try:
            return convert(call(*args))
        except self.nvml.NVMLError:
            return None

    def sample(self, index: int, since_us: int = 0) -> GpuSample:
        nvml = self.nvml
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
        except nvml.NVMLError as error:
            raise GpuUnavailable(f"GPU {index}: {_text(error)}") from None
        name = self._names.get(index) or self._try(nvml.nvmlDeviceGetName, _text, handle) or f"GPU {index}"
        self._names[index] = name
        memory = self._try(nvml.nvmlDeviceGetMemoryInfo, lambda m: m, handle)
        return GpuSample(
            index=index, name=name,
            load=self._try(nvml.nvmlDeviceGetUtilizationRates, lambda u: int(u.gpu), handle),
            vram_used=int(memory.used) if memory else None,
            vram_total=int(memory.total) if memory else None,
            temp_c=self._try(nvml.nvmlDeviceGetTemperature, int, handle, nvml.NVML_TEMPERATURE_GPU),
            power_w=self._try(nvml.nvmlDeviceGetPowerUsage, lambda mw: mw / 1000.0, handle),
            energy_mj=self._try(nvml.nvmlDeviceGetTotalEnergyConsumption, int, handle),
            processes=self._processes(handle, since_us),
        )

    def _processes(self, handle, since_us: int) -> tuple[GpuProcess, ...]:
        nvml = self.nvml
        loads = {}
        utilization = self._try(nvml.nvmlDeviceGetProcessUtilization, lambda v: v, handle, since_us)
        for entry in utilization or []:
            loads[int(entry.pid)] = max(int(entry.smUtil), loads.get(int(entry.pid), 0))
        found: dict[int, GpuProcess] = {}
        for kind, call in (("compute", "nvmlDeviceGetComputeRunningProcesses"),
                           ("graphics", "nvmlDeviceGetGraphicsRunningProcesses")):
            for proc in self._try(getattr(nvml, call), lambda v: v, handle) or []:
                pid = int(proc.pid)
                used = getattr(proc, "usedGpuMemory", None)
                # On Windows (WDDM) NVML reports per-process memory as "not available": 2**64 - 1.
                used = int(used) if used and int(used) < NVML_VALUE_NOT_AVAILABLE else None
                found.setdefault(pid, GpuProcess(pid=pid, name=_process_name(pid), kind=kind,
                                                 vram_bytes=used, load=loads.get(pid)))
        return tuple(found.values())


NVML_VALUE_NOT_AVAILABLE = 2**64 - 1


def _process_name(pid: int) -> str:
    import psutil
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return f"pid {pid}"


def nvml_problem(text: str) -> str:
    """Why NVML gave nothing, as the tray and doctor say it (NVML's own words go to the log)."""
    lowered = text.lower()
    if "library not found" in lowered or "function not found" in lowered:
        return "no NVIDIA driver found"
    if "driver not loaded" in lowered:
        return "the NVIDIA driver is not loaded (restart the PC after installing it)"
    if "no permission" in lowered:
        return "no permission to read the NVIDIA GPU's figures"
    return "no NVIDIA GPU or driver found"


class GpuUnavailable(Exception):
    pass


def parse_pci_bus_id(text: str) -> tuple[int, int, int, int] | None:
    """"00000000:01:00.0" (NVML's busId) -> (domain, bus, device, function); None when it is not one."""
    found = re.fullmatch(r"\s*(?:([0-9a-fA-F]+):)?([0-9a-fA-F]+):([0-9a-fA-F]+)\.([0-7])\s*", text or "")
    if not found:
        return None
    return (int(found.group(1) or "0", 16), int(found.group(2), 16), int(found.group(3), 16), int(found.group(4)))


class CombinedProvider:
    """Windows with an NVIDIA card: the performance counters give every adapter's and every program's load
    (NVML often has no per-program figures under WDDM); NVML adds the NVIDIA card's name, temperature, power
    and energy. Each NVML card is paired with the adapter at the same PCI address (D3DKMT's, for the adapter's
    LUID); NVML documents that its own order is no guarantee. Where an address cannot be read, the remaining
    cards are paired by memory in use, most first, and ``pairing`` says it is a guess (doctor shows it)."""

    label = "Windows performance counters, with NVML for the NVIDIA card's temperature, power and energy"

    def __init__(self, counters, nvml):
        self.counters, self.nvml = counters, nvml
        self.nvml_for: dict[int, int] = {}  # counters' adapter index -> NVML index
        self.pairing = "pci"  # "pci": every NVIDIA card found by its PCI address; "guess": some by memory order

    def open(self) -> None:
        self.counters.open()
        self.nvml.open()
        self.nvml_for, self.pairing = self._pair()

    def _pair(self) -> tuple[dict[int, int], str]:
        adapters = {i: self.counters.pci_address(i) for i in range(self.counters.count())}
        by_address = {address[1:]: i for i, address in adapters.items() if address is not None}
        pairs: dict[int, int] = {}
        left: list[int] = []
        for card in range(self.nvml.count()):
            address = self.nvml.pci_address(card)
            adapter = by_address.get(address[1:]) if address is not None else None  # Windows gives no domain
            if adapter is not None and adapter not in pairs:
                pairs[adapter] = card
            else:
                left.append(card)
        free = [i for i in range(self.counters.count()) if i not in pairs]  # most memory in use first
        for adapter, card in zip(free, left):
            pairs[adapter] = card
        guessed = bool(left) and (self.nvml.count() > 1 or self.counters.count() > 1)
        if guessed:
            log.info("NVML's cards paired with Windows' adapters by memory in use: %d of %d without a PCI address",
                     len(left), self.nvml.count())
        return pairs, "guess" if guessed else "pci"

    def close(self) -> None:
        self.counters.close()
        self.nvml.close()

    def driver(self) -> str | None:
        return self.nvml.driver()

    def count(self) -> int:
        return self.counters.count()

    def sample(self, index: int, since_us: int = 0) -> GpuSample:
        sample = self.counters.sample(index, since_us)
        if index not in self.nvml_for:
            return sample
        card = self.nvml.sample(self.nvml_for[index], since_us)
        return replace(sample, name=card.name, vram_total=card.vram_total, temp_c=card.temp_c,
                       power_w=card.power_w, energy_mj=card.energy_mj)


def choose_provider(platform: str = sys.platform, nvml=None, drm=None, pdh=None):
    """The GPU provider for this machine, and why, in words (doctor shows both). Each candidate is opened once
    to see whether it works, then closed; the monitor opens the one chosen."""
    nvml = nvml or NvmlProvider()
    nvml_problem_text = _works(nvml)
    if platform == "win32":
        if pdh is None:
            from worker_app.system.gpu_windows import PdhProvider
            pdh = PdhProvider()
        pdh_problem = _works(pdh)
        if pdh_problem is None:
            if nvml_problem_text is None:
                return CombinedProvider(pdh, nvml), "an NVIDIA driver is there, and Windows counts every GPU's use"
            return pdh, f"Windows counts every GPU's use; {nvml_problem_text}, so no temperature or power reading"
        if nvml_problem_text is None:
            return nvml, f"the NVIDIA driver answers ({pdh_problem})"
        return nvml, f"{nvml_problem_text}; {pdh_problem}"
    if nvml_problem_text is None:
        return nvml, "the NVIDIA driver answers"
    if platform.startswith("linux"):
        if drm is None:
            from worker_app.system.gpu_linux import DrmProvider
            drm = DrmProvider()
        drm_problem = _works(drm)
        if drm_problem is None:
            return drm, f"{nvml_problem_text}; the kernel's amdgpu/i915/xe driver shows the GPU"
        return nvml, f"{nvml_problem_text}; {drm_problem}"
    return nvml, nvml_problem_text


def _works(provider) -> str | None:
    """None when the provider opens and finds a GPU; else why not, in words."""
    try:
        provider.open()
        try:
            if provider.count() < 1:
                return "no GPU found"
        finally:
            provider.close()
    except GpuUnavailable as error:
        return str(error)
    return None


def provider_name(provider) -> str:
    return getattr(provider, "label", "NVML (NVIDIA)")


def inventory(provider=None) -> GpuInventory:
    """Lists the GPUs once (for hello and doctor)."""
    provider = provider or choose_provider()[0]
    try:
        provider.open()
    except GpuUnavailable as error:
        return GpuInventory(problem=str(error))
    try:
        out = GpuInventory(driver=provider.driver())
        for index in range(provider.count()):
            sample = provider.sample(index)
            if index == 0:
                out.missing = " and ".join(name for name, value in (("temperature", sample.temp_c),
                                                                    ("power", sample.power_w)) if value is None)
            gpu = {"name": sample.name}
            if sample.vram_total is not None:
                gpu["vram_bytes"] = sample.vram_total
            out.gpus.append(gpu)
        return out
    except GpuUnavailable as error:
        return GpuInventory(problem=str(error))
    finally:
        provider.close()


class GpuMonitor(Periodic):
    """Samples every GPU each ``interval`` seconds on its own thread; ``latest`` is the newest snapshot."""
    thread_name = "gpu-monitor"

    def __init__(self, provider=None, interval: float = 2.0, on_sample=None):
        self._periodic_init()
        self.provider = provider or NvmlProvider()
        self.interval = interval
        self.on_sample = on_sample or (lambda snapshot: None)
        self.latest = GpuSnapshot(time=0.0, problem="not started")
        self._opened = False
        self._last_us = 0

    def sample_now(self) -> GpuSnapshot:
        """Takes one snapshot on the calling thread."""
        now = time.time()
        if not self._opened:
            try:
                self.provider.open()
                self._opened = True
            except GpuUnavailable as error:
                self.latest = GpuSnapshot(time=now, problem=str(error))
                return self.latest
        try:
            since = self._last_us
            self._last_us = int(now * 1_000_000)
            gpus = tuple(self.provider.sample(i, since) for i in range(self.provider.count()))
            self.latest = GpuSnapshot(time=now, gpus=gpus)
        except GpuUnavailable as error:
            self.latest = GpuSnapshot(time=now, problem=str(error))
        return self.latest

    def tick(self) -> bool:
        snapshot = self.sample_now()
        try:
            self.on_sample(snapshot)
        except Exception:  # a listener's bug must not stop the monitor
            log.exception("GPU sample listener failed")
        # Without NVML nothing changes until the app restarts: stop sampling.
        return not (snapshot.problem and not self._opened)

    def finished(self) -> None:
        if self._opened:
            self.provider.close()
            self._opened = False
