"""How the worker works, as the owner set it (``runtime.settings`` makes it from the config)."""

from __future__ import annotations

from dataclasses import dataclass

from worker_app import constants as C


@dataclass(frozen=True)
class Settings:
    """How the worker works; the tray applies new settings with ``Worker.reconfigure``."""
    name: str = ""  # shown on the server; the PC's name by default
    device: str = "AUTO"
    device_type: str = ""
    gpu_indices: tuple[int, ...] = ()
    claim_wait: float = C.CLAIM_WAIT_DEFAULT
    pause_policy: str = "requeue"
    confine_writes: bool = True  # Landlock where the OS has it (worker_app/render/sandbox.py)
    warm: bool = True  # one Blender renders job after job (worker_app/render/warm.py)
    warm_idle_s: float = C.WARM_IDLE_S  # a warm Blender without a job ends after this long
    # A job whose scene needs a Blender this PC lacks: "yes" installs it (render/installs.py), "ask" leaves the job
    # waiting on the server while the tray asks the owner (only with a tray: runtime.settings), "no" leaves it to
    # a PC that has it
    auto_install: str = "no"
    blender_sources: tuple[str, ...] = ("archives", "pypi")
    blender_mirror: str = "https://download.blender.org/release"
    allow_insecure_http: bool = False  # plain http beyond this PC (the server, a Blender mirror) on the owner's word
    reuse_scene: bool = True  # a warm Blender keeps the last job's .blend loaded for a job on the same scene
    keep_awake: bool = True  # keep the PC from sleeping while a job is held (worker_app/system/power.py)
    share_program_names: bool = False  # the dashboard may show which program paused the worker (a game's name)
    max_jobs: int | None = None  # stop after this many jobs (tests, `homefarm run --max-jobs`)
