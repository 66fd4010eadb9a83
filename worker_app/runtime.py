"""Builds the running worker from the config: the worker loop, the GPU monitor, the guard and the ledger.

`homefarm run` and the tray start the very same thing through ``Runtime``.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker_app import config as config_mod
from worker_app import guard as G
from worker_app.render.discovery import BlenderInstall
from worker_app.client import WorkerClient
from worker_app.guard.energy import Ledger
from worker_app.system.gpu import GpuMonitor, choose_provider
from worker_app.system.power import KeepAwake
from worker_app.core import Folders, Settings, Worker


def manual_pause(paths: config_mod.Paths) -> G.ManualPause:
    return G.ManualPause(paths.pause_file)


def ledger(paths: config_mod.Paths) -> Ledger:
    return Ledger(paths.stats_file)


def build_guard(cfg: config_mod.Config, paths: config_mod.Paths, own_pids, own_paths, monitor: GpuMonitor,
                table: G.ProcessTable | None = None) -> G.Guard:
    snapshot = lambda: monitor.latest  # noqa: E731 - read at each check
    gpu_load = G.ForeignGpuLoad(snapshot, cfg.foreign_gpu_load_percent, cfg.foreign_gpu_seconds, own_pids,
                                not_games=cfg.not_games)
    detectors: list = [manual_pause(paths), G.Schedule(cfg.render_only, cfg.never),
                       G.DiskSpace(paths.data_dir, int(cfg.min_free_gb * 1024**3))]
    if cfg.pause_while_gaming:
        detectors.append(G.GameDetector(G.DEFAULT_GAMES + cfg.games, cfg.game_folders, own_pids, own_paths,
                                        table=table, not_games=cfg.not_games))
    if cfg.foreign_gpu_load_percent:
        detectors.append(gpu_load)
    if cfg.full_screen_hint:
        detectors.append(G.FullScreenHint(gpu=gpu_load))
    if cfg.pause_when_active:
        detectors.append(G.OwnerActive(cfg.active_idle_s))
    if cfg.max_gpu_temp_c or cfg.max_gpu_power_w:
        detectors.append(G.ThermalGuard(snapshot, cfg.max_gpu_temp_c, cfg.max_gpu_power_w))
    return G.Guard(detectors, hold_off_s=cfg.hold_off_s, interval=cfg.check_interval_s)


@dataclass
class Runtime:
    worker: Worker
    guard: G.Guard
    monitor: GpuMonitor
    cfg: config_mod.Config | None = None
    paths: config_mod.Paths | None = None
    thread: object = None
    asks_owner: bool = False  # a person is there to answer (the tray): blender.auto_install = "ask" asks

    def reconfigure(self, cfg: config_mod.Config, blenders: list[BlenderInstall] | None = None) -> bool:
        """Applies new settings without a restart; False when only a restart can (another server)."""
        old = self.cfg
        if old is not None and (cfg.server_url, cfg.allow_insecure_http) != (old.server_url,
                                                                             old.allow_insecure_http):
            return False
        worker = self.worker
        worker.reconfigure(settings(cfg, worker.settings.max_jobs, self.asks_owner), blenders)
        fresh = build_guard(cfg, self.paths, worker.own_pids, [b.path for b in worker.blenders], self.monitor)
        self.guard.detectors = fresh.detectors
        self.guard.hold_off_s, self.guard.interval = cfg.hold_off_s, cfg.check_interval_s
        self.monitor.interval = cfg.gpu_interval_s
        self.cfg = cfg
        self.guard.evaluate()
        return True

    def start(self):
        self.monitor.start()
        self.guard.evaluate()  # know whether to pause before the first claim
        self.guard.start()
        self.thread = self.worker.start_thread()
        return self.thread

    def stop(self, timeout: float = 60.0) -> None:
        """Stops the worker (a running render is stopped and its job released), the guard and the monitor."""
        self.worker.stop()
        if self.thread is not None:
            self.thread.join(timeout)
        self.guard.stop()
        self.monitor.stop()


def settings(cfg: config_mod.Config, max_jobs: int | None = None, asks_owner: bool = False) -> Settings:
    """The core's settings, from the config's keys the settings table marks as the core's. Without a person to
    answer (``homefarm run``, a service), ``blender.auto_install = "ask"`` is "no"."""
    values = {s.core: getattr(cfg, s.attr) for s in config_mod.SETTINGS if s.core}
    if values.get("auto_install") == "ask" and not asks_owner:
        values["auto_install"] = "no"
    return Settings(**values, max_jobs=max_jobs)


def build(cfg: config_mod.Config, paths: config_mod.Paths, token: str, blenders: list[BlenderInstall], *,
          provider=None, awake_backend=None, max_jobs: int | None = None, on_snapshot=None, on_job_end=None,
          asks_owner: bool = False) -> Runtime:
    def make_client():
        return WorkerClient(cfg.server_url, token, cfg.allow_insecure_http)

    monitor = GpuMonitor(provider or choose_provider()[0], interval=cfg.gpu_interval_s)
    holder: dict = {}
    own_pids = lambda: holder["worker"].own_pids()  # noqa: E731 - the worker exists by the first check
    guard = build_guard(cfg, paths, own_pids, [b.path for b in blenders], monitor)
    worker = Worker(make_client(), blenders, Folders(paths.jobs_dir, paths.scene_cache), settings(cfg, max_jobs, asks_owner),
                    make_client=make_client, guard=guard, monitor=monitor, ledger=ledger(paths),
                    on_snapshot=on_snapshot, on_job_end=on_job_end, keep_awake=KeepAwake(awake_backend))
    worker.cache.max_bytes = int(cfg.cache_max_gb * 1024**3)
    holder["worker"] = worker
    return Runtime(worker, guard, monitor, cfg, paths, asks_owner=asks_owner)
