"""A GPU provider for machines without an NVIDIA GPU: the same interface as gpu.NvmlProvider."""

import time

from worker_app.system.gpu import GpuProcess, GpuSample, GpuUnavailable


class FakeProvider:
    def __init__(self, gpus=1, name="NVIDIA GeForce RTX 4070", energy=True):
        self.name = name
        self.gpus = gpus
        self.load = 0
        self.temp_c = 45
        self.power_w = 30.0
        self.energy_mj = 1_000_000 if energy else None
        self.processes: list[GpuProcess] = []
        self.missing = set()  # figures this "older GPU" does not support
        self.opened = False
        self.fail_open = None

    def open(self):
        if self.fail_open:
            raise GpuUnavailable(self.fail_open)
        self.opened = True

    def close(self):
        self.opened = False

    def driver(self):
        return "555.42"

    def count(self):
        return self.gpus

    def pci_address(self, index):
        return None  # as NVML answers where it cannot say: the pairing is then by memory order

    def sample(self, index, since_us=0):
        figures = {"load": self.load, "vram_used": 2 * 1024**3, "vram_total": 12 * 1024**3,
                   "temp_c": self.temp_c, "power_w": self.power_w, "energy_mj": self.energy_mj}
        for key in self.missing:
            figures[key] = None
        return GpuSample(index=index, name=self.name, processes=tuple(self.processes), **figures)


class DrawingProvider(FakeProvider):
    """A card at work: 64 °C, 180 W, its energy counter going up by 180 W's worth as a real one does; 20 % load,
    under what the guard takes for another program's use of the GPU."""

    energy_mj = property(lambda self: int(time.monotonic() * 180_000), lambda self, value: None)

    def __init__(self):
        super().__init__()
        self.temp_c, self.power_w, self.load = 64, 180.0, 20
