"""What the GPUs are, through NVML (``pynvml`` from the nvidia-ml-py distribution).

Without an NVIDIA GPU or driver this reports that plainly and homefarm carries on: Blender then
renders on the CPU or on another vendor's GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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


def inventory(nvml=None) -> GpuInventory:
    """Lists the NVIDIA GPUs. ``nvml`` is the pynvml module, or a fake with the same functions."""
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError:
            return GpuInventory(problem="nvidia-ml-py is not installed")
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as error:
        return GpuInventory(problem=f"no NVIDIA GPU or driver ({_text(error)})")
    try:
        out = GpuInventory(driver=_text(nvml.nvmlSystemGetDriverVersion()))
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            gpu = {"name": _text(nvml.nvmlDeviceGetName(handle))}
            try:
                gpu["vram_bytes"] = int(nvml.nvmlDeviceGetMemoryInfo(handle).total)
            except nvml.NVMLError:
                pass  # an older GPU may not report it: one figure missing, not the whole list
            try:
                gpu["uuid"] = _text(nvml.nvmlDeviceGetUUID(handle))
            except nvml.NVMLError:
                pass
            out.gpus.append(gpu)
        return out
    except nvml.NVMLError as error:
        return GpuInventory(problem=f"NVML failed: {_text(error)}")
    finally:
        try:
            nvml.nvmlShutdown()
        except nvml.NVMLError:
            pass
