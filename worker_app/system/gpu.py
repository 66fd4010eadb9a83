"""The GPUs, through NVML (``pynvml`` from the nvidia-ml-py distribution), behind a small provider interface.

``GpuMonitor`` samples every GPU on its own thread: load, VRAM, temperature, power, the energy counter
and the processes on the GPU. Without an NVIDIA GPU or driver it reports that plainly and homefarm carries
on: Blender renders on the CPU or another vendor's GPU. A call an older GPU does not support leaves that
one figure empty, never the whole sample. Tests use a fake provider with the same interface.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

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
    problem: str | None = None  # why NVML gave nothing, in words

    @property
    def available(self) -> bool:
        return self.problem is None


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlProvider:
    """The real thing: NVML through pynvml. Every method may raise ``GpuUnavailable``."""

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


def inventory(provider=None) -> GpuInventory:
    """Lists the NVIDIA GPUs once (for hello and doctor)."""
    provider = provider or NvmlProvider()
    try:
        provider.open()
    except GpuUnavailable as error:
        return GpuInventory(problem=str(error))
    try:
        out = GpuInventory(driver=provider.driver())
        for index in range(provider.count()):
            sample = provider.sample(index)
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
