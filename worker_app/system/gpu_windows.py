"""Any vendor's GPU on Windows, through the performance counters Task Manager reads: ``GPU Engine`` (each
process's use of each engine of each adapter) and ``GPU Process Memory`` / ``GPU Adapter Memory``.

A counter instance names its process, adapter and engine, e.g. ``pid_1234_luid_0x00000000_0x0000D1C5_phys_0_
eng_3_engtype_3D``. A program's load is its busiest engine type (the engines of one type summed), as Task
Manager shows it; an adapter's load is its busiest engine over all programs. These counters carry no
temperature or power: on an NVIDIA card NVML adds them (``CombinedProvider`` in ``gpu.py``); elsewhere the
tray, doctor and stats say there is no power reading.

The counters are read through ``Counters`` (PDH via ctypes), so the parsing is tested on Linux with
recorded counter data.
"""

from __future__ import annotations

import ctypes
import logging
import re
from collections import defaultdict

from worker_app.system.gpu import GpuProcess, GpuSample, GpuUnavailable, _process_name

log = logging.getLogger("homefarm.gpu")

ENGINE = r"\GPU Engine(*)\Utilization Percentage"
PROCESS_MEMORY = r"\GPU Process Memory(*)\Dedicated Usage"
ADAPTER_MEMORY = r"\GPU Adapter Memory(*)\Dedicated Usage"
COUNTERS = (ENGINE, PROCESS_MEMORY, ADAPTER_MEMORY)

_ENGINE_INSTANCE = re.compile(r"^pid_(\d+)_luid_(0x[0-9a-fA-F]+_0x[0-9a-fA-F]+)_phys_(\d+)_eng_(\d+)_engtype_(.*)$")
_PROCESS_INSTANCE = re.compile(r"^pid_(\d+)_luid_(0x[0-9a-fA-F]+_0x[0-9a-fA-F]+)_phys_(\d+)$")
_ADAPTER_INSTANCE = re.compile(r"^luid_(0x[0-9a-fA-F]+_0x[0-9a-fA-F]+)_phys_(\d+)$")


def adapters_in(values: dict[str, dict[str, float]]) -> list[str]:
    """The adapters (``luid_phys``) the counters name, those with dedicated memory first, in a stable order."""
    found = {}
    for instance, used in values.get(ADAPTER_MEMORY, {}).items():
        match = _ADAPTER_INSTANCE.match(instance)
        if match:
            found[f"{match[1]}_{match[2]}"] = used
    for instance in values.get(ENGINE, {}):
        match = _ENGINE_INSTANCE.match(instance)
        if match:
            found.setdefault(f"{match[2]}_{match[3]}", 0.0)
    return sorted(found, key=lambda a: (-found[a], a))


# The engine types a render competes for: 3D and compute (Cycles on CUDA, OptiX, HIP or oneAPI). Video decode
# and encode, copy and overlay engines are separate hardware: a 4K video, OBS on NVENC or NVIDIA Instant Replay
# keep them busy without slowing a render, so they are no program's "load" here. Types as the counters name
# them: "3D", "Compute_0", "Cuda", "Graphics_1" (AMD), "High Priority 3D"; the rest (VideoDecode, VideoEncode,
# Copy, LegacyOverlay, Security, VR) never count.
RENDER_ENGINE_TYPES = ("3d", "compute", "cuda", "graphics", "high priority 3d", "high priority compute")


def is_render_engine(kind: str) -> bool:
    """Whether an engine type (``engtype_...``) is one Cycles renders on."""
    return re.sub(r"_\d+$", "", kind.strip().lower()) in RENDER_ENGINE_TYPES


def adapter_figures(values: dict[str, dict[str, float]], adapter: str) -> tuple[int | None, int | None,
                                                                               dict[int, tuple[int, int | None]]]:
    """(the adapter's load %, its dedicated memory in use, {pid: (load %, dedicated bytes)}) from one read."""
    per_engine: dict[str, float] = defaultdict(float)  # engine -> % over all processes
    per_process: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))  # pid -> type -> %
    for instance, value in values.get(ENGINE, {}).items():
        match = _ENGINE_INSTANCE.match(instance)
        if not match or f"{match[2]}_{match[3]}" != adapter:
            continue
        pid, engine, kind = int(match[1]), match[4], match[5]
        per_engine[engine] += value  # the adapter's load, as Task Manager shows it: its busiest engine
        if is_render_engine(kind):
            per_process[pid][kind] += value
        else:
            per_process[pid]  # a program that only decodes video is listed, with no load
    memory: dict[int, int] = {}
    for instance, value in values.get(PROCESS_MEMORY, {}).items():
        match = _PROCESS_INSTANCE.match(instance)
        if match and f"{match[2]}_{match[3]}" == adapter:
            memory[int(match[1])] = memory.get(int(match[1]), 0) + int(value)
    used = None
    for instance, value in values.get(ADAPTER_MEMORY, {}).items():
        match = _ADAPTER_INSTANCE.match(instance)
        if match and f"{match[1]}_{match[2]}" == adapter:
            used = int(value)
    load = round(min(max(per_engine.values()), 100.0)) if per_engine else None
    processes = {pid: (round(min(max(kinds.values(), default=0.0), 100.0)), memory.get(pid))
                 for pid, kinds in per_process.items() if pid}  # pid 0: the system's own work
    for pid, used_bytes in memory.items():
        processes.setdefault(pid, (0, used_bytes))
    return load, used, processes


def pdh_code(status: int) -> str:
    """A PDH status as Microsoft's documentation writes it: PDH_CSTATUS_NO_OBJECT is 0xC0000BB8, which a
    signed return value would show as -0x3ffff448."""
    return f"0x{status & 0xFFFFFFFF:08X}"


class Counters:
    """The GPU counters through PDH (pdh.dll), read with wildcard instances; Windows only."""

    PDH_FMT_DOUBLE = 0x00000200
    PDH_MORE_DATA = 0x800007D2

    class _Value(ctypes.Structure):
        _fields_ = [("CStatus", ctypes.c_uint32), ("doubleValue", ctypes.c_double)]

    class _Item(ctypes.Structure):
        pass

    _Item._fields_ = [("szName", ctypes.c_wchar_p), ("FmtValue", _Value)]

    def __init__(self, pdh=None):
        self.pdh = pdh or ctypes.WinDLL("pdh")  # type: ignore[attr-defined]
        self.query = ctypes.c_void_p()
        self.counters: dict[str, ctypes.c_void_p] = {}

    def open(self) -> None:
        status = self.pdh.PdhOpenQueryW(None, None, ctypes.byref(self.query))
        if status:
            raise GpuUnavailable(f"Windows' performance counters did not open (PDH error {pdh_code(status)})")
        for path in COUNTERS:
            handle = ctypes.c_void_p()
            status = self.pdh.PdhAddEnglishCounterW(self.query, path, None, ctypes.byref(handle))
            if status:
                raise GpuUnavailable("this Windows has no GPU performance counters (Windows 10 1709 or newer "
                                     f"has them; PDH error {pdh_code(status)})")
            self.counters[path] = handle
        self.pdh.PdhCollectQueryData(self.query)  # utilization is a rate: the first read only starts it

    def close(self) -> None:
        if self.query:
            self.pdh.PdhCloseQuery(self.query)
            self.query = ctypes.c_void_p()

    def read(self) -> dict[str, dict[str, float]]:
        self.pdh.PdhCollectQueryData(self.query)
        out = {}
        for path, handle in self.counters.items():
            size, count = ctypes.c_uint32(0), ctypes.c_uint32(0)
            status = self.pdh.PdhGetFormattedCounterArrayW(handle, self.PDH_FMT_DOUBLE, ctypes.byref(size),
                                                          ctypes.byref(count), None)
            values: dict[str, float] = {}
            if status & 0xFFFFFFFF == self.PDH_MORE_DATA and size.value:
                buffer = (ctypes.c_byte * size.value)()
                status = self.pdh.PdhGetFormattedCounterArrayW(handle, self.PDH_FMT_DOUBLE, ctypes.byref(size),
                                                              ctypes.byref(count), buffer)
                if not status:
                    items = ctypes.cast(buffer, ctypes.POINTER(self._Item))
                    for i in range(count.value):
                        if items[i].FmtValue.CStatus in (0, 1):  # PDH_CSTATUS_VALID_DATA, _NEW_DATA
                            values[items[i].szName] = values.get(items[i].szName, 0.0) + \
                                items[i].FmtValue.doubleValue
            out[path] = values
        return out


# D3DKMT (d3dkmthk.h): an adapter's PCI address from its LUID, to pair the counters' adapters with NVML's cards.
class _LUID(ctypes.Structure):
    _fields_ = [("LowPart", ctypes.c_uint32), ("HighPart", ctypes.c_int32)]


class _OPENADAPTERFROMLUID(ctypes.Structure):
    _fields_ = [("AdapterLuid", _LUID), ("hAdapter", ctypes.c_uint32)]


class _ADAPTERADDRESS(ctypes.Structure):
    _fields_ = [("BusNumber", ctypes.c_uint32), ("DeviceNumber", ctypes.c_uint32),
                ("FunctionNumber", ctypes.c_uint32)]


class _QUERYADAPTERINFO(ctypes.Structure):
    _fields_ = [("hAdapter", ctypes.c_uint32), ("Type", ctypes.c_int), ("pPrivateDriverData", ctypes.c_void_p),
                ("PrivateDriverDataSize", ctypes.c_uint32)]


class _CLOSEADAPTER(ctypes.Structure):
    _fields_ = [("hAdapter", ctypes.c_uint32)]


KMTQAITYPE_ADAPTERADDRESS = 6


def adapter_address(luid: str, gdi32=None) -> tuple[int, int, int, int] | None:
    """(0, bus, device, function) of the adapter with this LUID ("0x00000000_0x0000D1C5", high part first, as
    the counters name it); None where the OS does not say (a software adapter has no PCI address)."""
    high, low = (int(part, 16) for part in luid.split("_"))
    if gdi32 is None:
        gdi32 = ctypes.WinDLL("gdi32")  # type: ignore[attr-defined]
    opened = _OPENADAPTERFROMLUID(_LUID(low, ctypes.c_int32(high).value))
    if gdi32.D3DKMTOpenAdapterFromLuid(ctypes.byref(opened)) != 0:  # an NTSTATUS: 0 is success
        return None
    try:
        address = _ADAPTERADDRESS()
        query = _QUERYADAPTERINFO(opened.hAdapter, KMTQAITYPE_ADAPTERADDRESS,
                                  ctypes.cast(ctypes.pointer(address), ctypes.c_void_p), ctypes.sizeof(address))
        if gdi32.D3DKMTQueryAdapterInfo(ctypes.byref(query)) != 0:
            return None
        return 0, address.BusNumber, address.DeviceNumber, address.FunctionNumber
    finally:
        gdi32.D3DKMTCloseAdapter(ctypes.byref(_CLOSEADAPTER(opened.hAdapter)))


class PdhProvider:
    """Every GPU of any vendor on Windows, with the GpuMonitor provider interface."""

    label = "Windows performance counters (GPU Engine)"

    def __init__(self, counters=None, process_name=_process_name, address_of=adapter_address):
        self.counters = counters
        self.process_name = process_name
        self.address_of = address_of  # LUID -> PCI address (D3DKMT), to pair an adapter with NVML's card
        self.adapters: list[str] = []
        self._values: dict[str, dict[str, float]] = {}

    def open(self) -> None:
        if self.counters is None:
            self.counters = Counters()
        self.counters.open()
        self._values = self.counters.read()
        self.adapters = adapters_in(self._values)
        if not self.adapters:
            raise GpuUnavailable("Windows' performance counters list no GPU")

    def close(self) -> None:
        if self.counters is not None:
            self.counters.close()

    def driver(self) -> str | None:
        return None

    def count(self) -> int:
        return len(self.adapters)

    def pci_address(self, index: int) -> tuple[int, int, int, int] | None:
        luid = self.adapters[index].rsplit("_", 1)[0]
        try:
            return self.address_of(luid)
        except (OSError, AttributeError, ValueError) as error:  # no gdi32 (not Windows), an odd LUID
            log.debug("no PCI address for adapter %s: %s", luid, error)
            return None

    def sample(self, index: int, since_us: int = 0) -> GpuSample:
        if index == 0:
            self._values = self.counters.read()
        adapter = self.adapters[index]
        load, used, processes = adapter_figures(self._values, adapter)
        # The counters carry no adapter names; NVML names an NVIDIA card (CombinedProvider).
        return GpuSample(index=index, name=f"GPU {index}", load=load, vram_used=used,
                         processes=tuple(GpuProcess(pid=pid, name=self.process_name(pid), kind="graphics",
                                                    vram_bytes=vram, load=share)
                                         for pid, (share, vram) in sorted(processes.items())))
