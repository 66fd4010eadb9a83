"""AMD and Intel GPUs on Linux, read as the kernel shows them: sysfs and hwmon for the card's figures,
``/proc/<pid>/fdinfo`` for each program's share of the GPU (the DRM "client usage stats" nvtop reads).

- amdgpu: ``gpu_busy_percent``, ``mem_info_vram_used``/``_total``, hwmon ``temp1_input`` (edge, m°C) and
  ``power1_average`` or ``power1_input`` (µW). No energy counter: the energy meter integrates the power.
- i915 and xe (Intel Arc and integrated): hwmon ``energy1_input`` (µJ) and ``power1_input`` where the card
  has them (discrete cards); the load is the busiest engine's time summed over the programs using it.
- Each program's load is the busiest of its render engines (3D and compute, ``RENDER_ENGINES``: a video being
  decoded or a screen being recorded does not slow Cycles) (``drm-engine-<name>: <ns>``, or xe's
  ``drm-cycles-<name>``/``drm-total-cycles-<name>``) between two samples; its VRAM is ``drm-memory-vram``
  (amdgpu) or ``drm-total-local0``/``drm-resident-local0`` (Intel).

Everything is read through ``Files`` so that the tests run on recorded real trees and fdinfo lines.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass, field

from worker_app.system.gpu import GpuProcess, GpuSample, GpuUnavailable

log = logging.getLogger("homefarm.gpu")

DRIVERS = {"amdgpu": "AMD", "i915": "Intel", "xe": "Intel"}
_CARD = re.compile(r"^card\d+$")
_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}
# A client's memory on the card: drm-<kind>-<region>, the card's own regions being amdgpu's vram, xe's vram0
# and i915's local0; of the kinds, resident (in the card's memory now) says most, then amdgpu's older
# "memory", then total (allocated).
_VRAM_KEY = re.compile(r"^drm-(resident|memory|total)-(vram\d*|local\d+)$")
_VRAM_KINDS = ("resident", "memory", "total")
# The engines a render competes for, by the drivers' fdinfo names: amdgpu gfx and compute; i915 render and
# compute; xe rcs (render) and ccs (compute). Video decode/encode (dec, enc, jpeg, video, vcs, vecs) and copy
# (dma, copy, bcs) engines are other hardware, and count for no program's load.
RENDER_ENGINES = frozenset({"gfx", "compute", "render", "rcs", "ccs"})
FD_RESCAN_S = 10.0  # a process's descriptors are listed again this often to find new DRM clients


class Files:
    """The few file operations the provider needs; tests replace it with a recorded tree."""

    def read(self, path: str) -> str | None:
        try:
            with open(path, encoding="utf-8", errors="replace") as file:
                return file.read()
        except OSError:
            return None

    def list(self, path: str) -> list[str]:
        try:
            return os.listdir(path)
        except OSError:
            return []

    def link(self, path: str) -> str | None:
        try:
            return os.readlink(path)
        except OSError:
            return None


@dataclass
class Card:
    path: str  # /sys/class/drm/cardN
    driver: str
    pdev: str  # the PCI address, as fdinfo's drm-pdev names it
    name: str
    hwmon: str | None


@dataclass
class _Client:
    engines: dict[str, int]  # engine -> busy ns (or cycles) so far
    totals: dict[str, int] = field(default_factory=dict)  # xe: engine -> total cycles so far
    vram: int | None = None
    vram_rank: int = 99  # which of _VRAM_KINDS gave it: the more telling kind wins


def parse_fdinfo(text: str) -> tuple[str, str, str, _Client] | None:
    """(driver, pdev, client id, usage) from one fdinfo file, or None for a file that is no DRM client."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            values[key.strip()] = value.strip()
    driver, client = values.get("drm-driver"), values.get("drm-client-id")
    if driver not in DRIVERS or client is None:
        return None
    usage = _Client({})
    for key, value in values.items():
        number = value.split()[0] if value else ""
        if not number.isdigit():
            continue
        if key.startswith("drm-engine-") and not key.startswith("drm-engine-capacity-"):
            usage.engines[key.removeprefix("drm-engine-")] = int(number)
        elif key.startswith("drm-cycles-"):
            usage.engines[key.removeprefix("drm-cycles-")] = int(number)
        elif key.startswith("drm-total-cycles-"):
            usage.totals[key.removeprefix("drm-total-cycles-")] = int(number)
        elif _VRAM_KEY.match(key):
            unit = value.split()[1] if len(value.split()) > 1 else "B"
            found = int(number) * _UNITS.get(unit, 1)
            rank = _VRAM_KINDS.index(_VRAM_KEY.match(key)[1])
            if usage.vram is None or rank < usage.vram_rank:
                usage.vram, usage.vram_rank = found, rank
    return driver, values.get("drm-pdev", ""), client, usage


class DrmProvider:
    """AMD (amdgpu) and Intel (i915, xe) GPUs on Linux, with the GpuMonitor provider interface."""

    label = "Linux DRM (amdgpu, i915, xe)"

    def __init__(self, files: Files | None = None, sys_root: str = "/sys", proc_root: str = "/proc",
                 clock=time.monotonic):
        self.files = files or Files()
        self.sys_root, self.proc_root = sys_root, proc_root
        self.clock = clock
        self.cards: list[Card] = []
        self._clients: dict[tuple[int, str, str], tuple[float, _Client]] = {}  # last reading per client
        self._drm_fds: dict[int, tuple[float, list[str]]] = {}  # pid -> (when listed, its DRM descriptors)
        self._loads: dict[str, dict[int, tuple[int, int | None]]] = {}  # pdev -> pid -> (load %, vram)
        self._engine_load: dict[str, int] = {}  # pdev -> busiest engine's load over all clients

    # -- the provider interface ---------------------------------------------------------------

    def open(self) -> None:
        self.cards = self.find_cards()
        if not self.cards:
            raise GpuUnavailable("no AMD or Intel GPU found (no amdgpu, i915 or xe device)")

    def close(self) -> None:
        self._clients.clear()
        self._drm_fds.clear()

    def driver(self) -> str | None:
        drivers = sorted({card.driver for card in self.cards})
        return f"{', '.join(drivers)} (Linux {os.uname().release})" if drivers else None

    def count(self) -> int:
        return len(self.cards)

    def sample(self, index: int, since_us: int = 0) -> GpuSample:
        if index == 0:
            self._read_clients()  # once per round, for every card
        card = self.cards[index]
        device = f"{card.path}/device"
        busy = self._int(f"{device}/gpu_busy_percent")
        used, total = self._int(f"{device}/mem_info_vram_used"), self._int(f"{device}/mem_info_vram_total")
        temp = power = energy = None
        if card.hwmon:
            milli_c = self._int(f"{card.hwmon}/temp1_input")
            temp = round(milli_c / 1000) if milli_c is not None else None
            micro_w = self._int(f"{card.hwmon}/power1_average")
            micro_w = micro_w if micro_w is not None else self._int(f"{card.hwmon}/power1_input")
            power = micro_w / 1e6 if micro_w is not None else None
            micro_j = self._int(f"{card.hwmon}/energy1_input")
            energy = micro_j // 1000 if micro_j is not None else None
        loads = self._loads.get(card.pdev, {})
        processes = tuple(GpuProcess(pid=pid, name=self._comm(pid), kind="graphics", vram_bytes=vram, load=load)
                          for pid, (load, vram) in sorted(loads.items()))
        load = busy if busy is not None else self._engine_load.get(card.pdev)
        return GpuSample(index=index, name=card.name, load=load, vram_used=used, vram_total=total, temp_c=temp,
                         power_w=power, energy_mj=energy, processes=processes)

    # -- the cards ----------------------------------------------------------------------------

    def find_cards(self) -> list[Card]:
        cards = []
        base = f"{self.sys_root}/class/drm"
        for entry in sorted(self.files.list(base), key=lambda n: int(n[4:]) if _CARD.match(n) else -1):
            if not _CARD.match(entry):
                continue  # connectors (card0-DP-1) and render nodes
            device = f"{base}/{entry}/device"
            driver = os.path.basename(self.files.link(f"{device}/driver") or "")
            if driver not in DRIVERS:
                continue
            pdev = os.path.basename(self.files.link(device) or "")
            hwmon = next((f"{device}/hwmon/{h}" for h in sorted(self.files.list(f"{device}/hwmon"))), None)
            cards.append(Card(f"{base}/{entry}", driver, pdev, self._card_name(device, driver), hwmon))
        return cards

    def _card_name(self, device: str, driver: str) -> str:
        product = (self.files.read(f"{device}/product_name") or "").strip()
        if product:
            return product
        vendor = (self.files.read(f"{device}/vendor") or "").strip().removeprefix("0x")
        model = (self.files.read(f"{device}/device") or "").strip().removeprefix("0x")
        return f"{DRIVERS[driver]} GPU ({vendor}:{model})" if vendor and model else f"{DRIVERS[driver]} GPU"

    def _int(self, path: str) -> int | None:
        text = self.files.read(path)
        try:
            return int(text.split()[0]) if text and text.split() else None
        except ValueError:
            return None

    def _comm(self, pid: int) -> str:
        return (self.files.read(f"{self.proc_root}/{pid}/comm") or f"pid {pid}").strip()

    # -- each program's share -----------------------------------------------------------------

    def _read_clients(self) -> None:
        """Reads every DRM client's counters and turns the change since the last round into loads."""
        now = self.clock()
        seen: dict[tuple[int, str, str], tuple[float, _Client]] = {}
        loads: dict[str, dict[int, tuple[int, int | None]]] = {}
        engine_busy: dict[str, dict[str, float]] = {}
        for pid_text in self.files.list(self.proc_root):
            if not pid_text.isdigit():
                continue
            pid = int(pid_text)
            for fd in self._drm_descriptors(pid, now):
                parsed = parse_fdinfo(self.files.read(f"{self.proc_root}/{pid}/fdinfo/{fd}") or "")
                if parsed is None:
                    continue
                _driver, pdev, client_id, usage = parsed
                key = (pid, pdev, client_id)
                if key in seen:
                    continue  # one client, several descriptors
                seen[key] = (now, usage)
                before = self._clients.get(key)
                load = 0
                if before is not None and now > before[0]:
                    for engine, value in usage.engines.items():
                        share = self._share(engine, value, usage, before, now)
                        if engine in RENDER_ENGINES:  # a program's load: what a render competes for
                            load = max(load, round(min(share, 1.0) * 100))
                        engine_busy.setdefault(pdev, {}).setdefault(engine, 0.0)
                        engine_busy[pdev][engine] += share
                old_load, old_vram = loads.setdefault(pdev, {}).get(pid, (0, None))
                vram = (old_vram or 0) + usage.vram if usage.vram is not None else old_vram
                loads[pdev][pid] = (max(old_load, load), vram)
        self._clients = seen
        self._loads = loads
        self._engine_load = {pdev: round(min(max(busy.values(), default=0.0), 1.0) * 100)
                             for pdev, busy in engine_busy.items()}
        gone = set(self._drm_fds) - {pid for pid, _, _ in seen}
        for pid in gone:
            if now - self._drm_fds[pid][0] >= FD_RESCAN_S:
                del self._drm_fds[pid]

    @staticmethod
    def _share(engine: str, value: int, usage: _Client, before: tuple[float, _Client], now: float) -> float:
        """The part of the time between two readings that ``engine`` was busy for this client."""
        then, old = before
        if engine in usage.totals and engine in old.totals:  # xe: busy cycles out of all cycles
            total = usage.totals[engine] - old.totals[engine]
            return (value - old.engines.get(engine, value)) / total if total > 0 else 0.0
        return max(0, value - old.engines.get(engine, value)) / ((now - then) * 1e9)

    def _drm_descriptors(self, pid: int, now: float) -> list[str]:
        """The process's descriptors open on a DRM device; listed again every FD_RESCAN_S seconds."""
        listed = self._drm_fds.get(pid)
        if listed is not None and now - listed[0] < FD_RESCAN_S:
            return listed[1]
        fds = [fd for fd in self.files.list(f"{self.proc_root}/{pid}/fd")
               if (self.files.link(f"{self.proc_root}/{pid}/fd/{fd}") or "").startswith("/dev/dri/")]
        self._drm_fds[pid] = (now, fds)
        return fds
