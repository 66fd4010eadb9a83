"""Read by a `homefarm` process that a test starts with this folder and tests/ on PYTHONPATH: its GPU provider
becomes tests/support/fake_nvml.py's DrawingProvider, the same interface as NVML's, so a machine without an
NVIDIA GPU has figures (temperature, power, energy) for the activity window's real-process tests."""

import worker_app.system.gpu as gpu
from support.fake_nvml import DrawingProvider

_provider = DrawingProvider()
gpu.choose_provider = lambda *args, **kwargs: (_provider, "")
