"""What the kernel and Windows show of AMD and Intel GPUs, for the provider tests, behind the providers' own
small OS interfaces (``gpu_linux.Files``, ``gpu_windows.Counters``).

The layouts, file names, units and line formats are the kernel's (Documentation/gpu/amdgpu/ sysfs and hwmon,
Documentation/gpu/drm-usage-stats.rst, as amdgpu 6.x, i915 and xe print fdinfo) and Windows' GPU counters'
(instance names as ``typeperf "\\GPU Engine(*)\\Utilization Percentage"`` lists them). This machine has no
AMD or Intel GPU and no Windows: the trees are written after those formats with a real card's values, not
captured here.
"""

from __future__ import annotations

import posixpath

LINK = object()


def link(target: str):
    return (LINK, target)


AMD_PCI = "/sys/devices/pci0000:00/0000:00:01.1/0000:01:00.0/0000:02:00.0/0000:03:00.0"
INTEL_PCI = "/sys/devices/pci0000:00/0000:00:02.0"

# A Radeon RX 7900 XTX (Navi 31) beside an Intel UHD 770, on Linux 6.8; the drm class has connectors and
# render nodes too, which are no cards.
AMD_AND_INTEL_SYS = {
    "/sys/class/drm/card0": link(f"{INTEL_PCI}/drm/card0"),
    "/sys/class/drm/card0-HDMI-A-1": link(f"{INTEL_PCI}/drm/card0/card0-HDMI-A-1"),
    "/sys/class/drm/card1": link(f"{AMD_PCI}/drm/card1"),
    "/sys/class/drm/card1-DP-1": link(f"{AMD_PCI}/drm/card1/card1-DP-1"),
    "/sys/class/drm/renderD128": link(f"{INTEL_PCI}/drm/renderD128"),
    "/sys/class/drm/renderD129": link(f"{AMD_PCI}/drm/renderD129"),
    "/sys/class/drm/version": "drm 1.1.0 20060810\n",
    "/sys/class/drm/card0/device": link("../../../0000:00:02.0"),
    "/sys/class/drm/card0/device/driver": link("../../../bus/pci/drivers/i915"),
    "/sys/class/drm/card0/device/vendor": "0x8086\n",
    "/sys/class/drm/card0/device/device": "0x4680\n",
    "/sys/class/drm/card1/device": link("../../../0000:03:00.0"),
    "/sys/class/drm/card1/device/driver": link("../../../../../../bus/pci/drivers/amdgpu"),
    "/sys/class/drm/card1/device/vendor": "0x1002\n",
    "/sys/class/drm/card1/device/device": "0x744c\n",
    "/sys/class/drm/card1/device/product_name": "\n",  # empty on most consumer boards
    "/sys/class/drm/card1/device/gpu_busy_percent": "97\n",
    "/sys/class/drm/card1/device/mem_info_vram_total": "25753026560\n",
    "/sys/class/drm/card1/device/mem_info_vram_used": "6442450944\n",
    "/sys/class/drm/card1/device/hwmon/hwmon4/name": "amdgpu\n",
    "/sys/class/drm/card1/device/hwmon/hwmon4/temp1_input": "71000\n",
    "/sys/class/drm/card1/device/hwmon/hwmon4/temp1_label": "edge\n",
    "/sys/class/drm/card1/device/hwmon/hwmon4/temp2_input": "88000\n",
    "/sys/class/drm/card1/device/hwmon/hwmon4/temp2_label": "junction\n",
    "/sys/class/drm/card1/device/hwmon/hwmon4/power1_input": "336000000\n",  # RDNA 3 on 6.8: no _average
    "/sys/class/drm/card1/device/hwmon/hwmon4/power1_label": "PPT\n",
}

# An Arc A770 (DG2) alone, i915: no busy percentage and no VRAM files in sysfs; its hwmon has energy.
ARC_PCI = "/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/0000:02:01.0/0000:03:00.0"
ARC_SYS = {
    "/sys/class/drm/card0": link(f"{ARC_PCI}/drm/card0"),
    "/sys/class/drm/card0/device": link("../../../0000:03:00.0"),
    "/sys/class/drm/card0/device/driver": link("../../../../../../bus/pci/drivers/i915"),
    "/sys/class/drm/card0/device/vendor": "0x8086\n",
    "/sys/class/drm/card0/device/device": "0x56a0\n",
    "/sys/class/drm/card0/device/hwmon/hwmon2/name": "i915\n",
    "/sys/class/drm/card0/device/hwmon/hwmon2/energy1_input": "912345678901\n",
    "/sys/class/drm/card0/device/hwmon/hwmon2/power1_max": "190000000\n",
}


def fdinfo_amdgpu(client: int, gfx_ns: int, vram_kib: int, pdev: str = "0000:03:00.0") -> str:
    """amdgpu's fdinfo as Linux 6.8 prints it."""
    return (f"pos:\t0\nflags:\t02100002\nmnt_id:\t26\nino:\t1097\ndrm-driver:\tamdgpu\ndrm-client-id:\t{client}\n"
            f"drm-pdev:\t{pdev}\npasid:\t32784\ndrm-memory-vram:\t{vram_kib} KiB\ndrm-memory-gtt: \t8292 KiB\n"
            f"drm-memory-cpu: \t0 KiB\namd-memory-visible-vram:\t{vram_kib} KiB\namd-evicted-vram:\t0 KiB\n"
            f"amd-requested-vram:\t{vram_kib} KiB\namd-requested-gtt:\t8292 KiB\ndrm-engine-gfx:\t{gfx_ns} ns\n"
            f"drm-engine-compute:\t0 ns\ndrm-engine-dma:\t58231 ns\ndrm-engine-dec:\t0 ns\ndrm-engine-enc:\t0 ns\n")


def fdinfo_i915(client: int, render_ns: int, pdev: str = "0000:00:02.0") -> str:
    """i915's fdinfo (Linux 6.8): engines by class, with the capacity of classes that have several."""
    return (f"pos:\t0\nflags:\t02100002\nmnt_id:\t26\nino:\t1128\ndrm-driver:\ti915\ndrm-client-id:\t{client}\n"
            f"drm-pdev:\t{pdev}\ndrm-total-system0:\t7628 KiB\ndrm-shared-system0:\t0\ndrm-active-system0:\t0\n"
            f"drm-resident-system0:\t7628 KiB\ndrm-purgeable-system0:\t1184 KiB\ndrm-total-stolen-system0:\t0\n"
            f"drm-engine-render:\t{render_ns} ns\ndrm-engine-copy:\t0 ns\ndrm-engine-video:\t0 ns\n"
            f"drm-engine-capacity-video:\t2\ndrm-engine-video-enhance:\t0 ns\n")


def fdinfo_xe(client: int, cycles: int, total: int, pdev: str = "0000:03:00.0") -> str:
    """xe's fdinfo (Linux 6.12): GPU cycles busy out of all cycles, per engine class."""
    return (f"pos:\t0\nflags:\t02100002\nmnt_id:\t26\nino:\t1128\ndrm-driver:\txe\ndrm-client-id:\t{client}\n"
            f"drm-pdev:\t{pdev}\ndrm-total-system:\t0\ndrm-total-gtt:\t16 MiB\ndrm-total-vram0:\t1024 MiB\n"
            f"drm-resident-vram0:\t1024 MiB\ndrm-cycles-rcs:\t{cycles}\ndrm-total-cycles-rcs:\t{total}\n"
            f"drm-cycles-bcs:\t0\ndrm-total-cycles-bcs:\t{total}\ndrm-cycles-ccs:\t0\ndrm-total-cycles-ccs:\t{total}\n")


class FakeFiles:
    """gpu_linux.Files over a dict: path -> text, or link(target). Directories are implied by paths below
    them; a link to a directory resolves paths below it."""

    def __init__(self, tree: dict):
        self.tree = dict(tree)

    def _resolve(self, path: str) -> str:
        parts = path.split("/")
        for i in range(len(parts), 1, -1):
            head = "/".join(parts[:i])
            entry = self.tree.get(head)
            if isinstance(entry, tuple) and entry[0] is LINK and i < len(parts):
                target = posixpath.normpath(posixpath.join(posixpath.dirname(head), entry[1]))
                if any(k.startswith(target + "/") for k in self.tree):
                    return self._resolve("/".join([target, *parts[i:]]))
        return path

    def read(self, path):
        entry = self.tree.get(self._resolve(path))
        return entry if isinstance(entry, str) else None

    def list(self, path):
        path = self._resolve(path).rstrip("/") + "/"
        return sorted({key[len(path):].split("/")[0] for key in self.tree if key.startswith(path)})

    def link(self, path):
        entry = self.tree.get(self._resolve(path)) if path not in self.tree else self.tree[path]
        return entry[1] if isinstance(entry, tuple) and entry[0] is LINK else None


def proc_tree(processes: dict[int, tuple[str, dict[str, str]]]) -> dict:
    """/proc for {pid: (comm, {fd: fdinfo text or None for a descriptor that is no DRM device})}."""
    tree = {}
    for pid, (comm, fds) in processes.items():
        tree[f"/proc/{pid}/comm"] = comm + "\n"
        for fd, text in fds.items():
            tree[f"/proc/{pid}/fd/{fd}"] = link("/dev/dri/renderD129" if text else "socket:[88123]")
            tree[f"/proc/{pid}/fdinfo/{fd}"] = text or "pos:\t0\nflags:\t02\nmnt_id:\t10\nino:\t88123\n"
    return tree


# Windows 11, a GeForce RTX 4070 (LUID 0x0000D1C5) and the CPU's Intel UHD 770 (0x0000A2F1): a game (pid 6120)
# on the 3D engine, Blender (4312) on the compute engine, the desktop (dwm, 1044) a little.
NVIDIA_LUID, INTEL_LUID = "0x00000000_0x0000D1C5", "0x00000000_0x0000A2F1"
WINDOWS_COUNTERS = {
    r"\GPU Engine(*)\Utilization Percentage": {
        f"pid_6120_luid_{NVIDIA_LUID}_phys_0_eng_0_engtype_3D": 71.8,
        f"pid_6120_luid_{NVIDIA_LUID}_phys_0_eng_1_engtype_Copy": 3.1,
        f"pid_6120_luid_{NVIDIA_LUID}_phys_0_eng_5_engtype_VideoDecode": 0.0,
        f"pid_4312_luid_{NVIDIA_LUID}_phys_0_eng_3_engtype_Compute_0": 12.4,
        f"pid_1044_luid_{NVIDIA_LUID}_phys_0_eng_0_engtype_3D": 2.2,
        f"pid_1044_luid_{INTEL_LUID}_phys_0_eng_0_engtype_3D": 1.3,
        f"pid_0_luid_{NVIDIA_LUID}_phys_0_eng_0_engtype_3D": 0.4,
    },
    r"\GPU Process Memory(*)\Dedicated Usage": {
        f"pid_6120_luid_{NVIDIA_LUID}_phys_0": 7_415_042_048.0,
        f"pid_4312_luid_{NVIDIA_LUID}_phys_0": 1_203_765_248.0,
        f"pid_1044_luid_{NVIDIA_LUID}_phys_0": 312_475_648.0,
        f"pid_1044_luid_{INTEL_LUID}_phys_0": 0.0,
        f"pid_8812_luid_{NVIDIA_LUID}_phys_0": 98_304_000.0,  # holds memory, no engine time this round
    },
    r"\GPU Adapter Memory(*)\Dedicated Usage": {
        f"luid_{NVIDIA_LUID}_phys_0": 9_047_629_824.0,
        f"luid_{INTEL_LUID}_phys_0": 0.0,
    },
}


class FakeCounters:
    """gpu_windows.Counters with recorded reads, one per read() (the last one repeats)."""

    def __init__(self, *reads):
        self.reads = list(reads)
        self.opened = self.closed = False

    def open(self):
        self.opened = True

    def close(self):
        self.closed = True

    def read(self):
        return self.reads.pop(0) if len(self.reads) > 1 else self.reads[0]
