"""``homefarm doctor``: checks what the worker needs and says what to fix for each failure."""

from __future__ import annotations

import os
from dataclasses import dataclass

from worker_app import layout as L
from worker_app import config as config_mod
from worker_app.system import gpu
from worker_app.render.discovery import BlenderNotFound, find_installs, probe_devices
from worker_app.client import ClientError, Unauthorized, WorkerClient
from worker_app.system.credentials import (NO_BACKEND_HELP, CredentialError, TokenStore, service_token,
                                           token_kind_problem)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def run_checks(paths: config_mod.Paths, tokens: TokenStore | None = None, token_file: str | None = None,
               environ=None, awake_backend=None) -> list[Check]:
    tokens = tokens or TokenStore()
    checks: list[Check] = []
    try:
        cfg = config_mod.load(paths)
        checks.append(Check("config", True, str(paths.config_file)))
    except config_mod.ConfigError as error:
        checks.append(Check("config", False, str(error), f"edit {paths.config_file}"))
        cfg = config_mod.Config()

    from worker_app.render.installs import installed, kind_of

    installs = find_installs(cfg.blender_path) + installed(paths.data_dir)
    if installs:
        own = {"module": " (installed by homefarm from PyPI)", "archive": " (installed by homefarm from the archives)"}
        detail = "; ".join(f"{i.version} at {i.path}{own.get(kind_of(i), '')}" for i in installs)
        detail += {"yes": "; one a scene needs is installed on demand (blender.auto_install)",
                   "ask": "; the tray asks before installing one a scene needs (blender.auto_install)"
                   }.get(cfg.auto_install, "")
        checks.append(Check("blender", True, detail))
        try:
            devices = probe_devices(installs[0])
            shown = "; ".join(f"{backend}: {', '.join(names) or 'none'}" for backend, names in devices.items())
            gpu_found = any(names for backend, names in devices.items() if backend != "CPU")
            checks.append(Check("devices", gpu_found, shown, "Blender sees no GPU: install the GPU driver "
                                "(NVIDIA 535 or newer for OPTIX/CUDA); renders run on the CPU until then",
                                required=False))
        except BlenderNotFound as error:
            checks.append(Check("devices", False, str(error), "check that Blender starts", required=False))
    else:
        checks.append(Check("blender", False, "Blender was not found",
                            "install Blender from https://www.blender.org/download/ (or "
                            "`sudo apt install blender`), or set blender.path with "
                            "`homefarm config set blender.path /path/to/blender`"))

    checks.append(_warm_check(cfg, paths))

    provider, why = gpu.choose_provider()
    inv = gpu.inventory(provider)
    if inv.available:
        names = ", ".join(g["name"] for g in inv.gpus) or "no GPUs"
        driver = f" (driver {inv.driver})" if inv.driver else ""
        checks.append(Check("gpu", True, f"{names}, read through {gpu.provider_name(provider)}{driver}: {why}",
                            required=False))
        if getattr(provider, "pairing", "pci") == "guess":
            checks.append(Check("gpu", False, "which NVIDIA card is which Windows adapter is a guess (by memory in "
                                "use): a temperature, power or name may belong to the other card",
                                "nothing to do: rendering is not affected; update the graphics driver if it "
                                "persists", required=False))
        if inv.missing:
            checks.append(Check("gpu", False, f"no {inv.missing} reading for this GPU", "nothing to do: homefarm "
                                "shows no such figure rather than a made-up one (energy and cost stay empty "
                                "without a power reading)", required=False))
    else:
        checks.append(Check("gpu", False, why, "GPU monitoring needs an NVIDIA driver, or on Linux the amdgpu, "
                            "i915 or xe driver, or Windows 10 1709 or newer; rendering still works without it",
                            required=False))

    checks.append(_pause_check(cfg, paths))
    checks.append(_awake_check(cfg, awake_backend))

    outbox_file = paths.outbox_file
    if outbox_file.exists():
        from worker_app.core.outbox import Outbox
        box = Outbox(outbox_file)
        waiting = box.pending()
        box.close()
        checks.append(Check("outbox", waiting == 0, f"{waiting} result(s) waiting to be sent" if waiting
                            else "every result has reached the server",
                            "start the worker (`homefarm run` or the tray) while the server is reachable: "
                            "it sends them before taking new jobs", required=False))

    token = None
    try:
        handed = service_token(token_file, os.environ if environ is None else environ)
    except CredentialError as error:
        handed = None
        checks.append(Check("token", False, str(error), "fix the token file, or start the worker without it"))
    if handed is not None:
        token = handed.token
        checks.append(Check("keyring", True, f"not needed: the token comes from {handed.source}", required=False))
    elif tokens.available():
        checks.append(Check("keyring", True, tokens.backend_name()))
        try:
            token = tokens.get(cfg.server_url)
        except CredentialError as error:
            checks.append(Check("token", False, str(error), "unlock the OS keyring"))
    else:
        checks.append(Check("keyring", False, "no OS keyring backend", NO_BACKEND_HELP))

    login = f"run `homefarm login --server {cfg.server_url}`"
    try:
        client = WorkerClient(cfg.server_url, token or "", cfg.allow_insecure_http)
    except config_mod.ConfigError as error:
        checks.append(Check("server", False, str(error), "use an https:// server URL"))
        checks.append(_unchecked_token(token, cfg.server_url, login))
        return checks
    try:
        health = client.health()
        checks.append(Check("server", True, f"{cfg.server_url} (server {health.get('version')})"))
    except ClientError as error:
        checks.append(Check("server", False, str(error),
                            "check the URL (`homefarm config set server.url ...`) and that the server runs"))
        checks.append(_unchecked_token(token, cfg.server_url, login))
        return checks
    if token is None:
        checks.append(Check("token", False, f"no worker token for {cfg.server_url} in the keyring",
                            f"run `homefarm login --server {cfg.server_url}`"))
    else:
        try:
            client.ping()
            checks.append(Check("token", True, f"accepted by the server; it comes from "
                                f"{handed.source if handed else 'the OS keyring'}"))
        except Unauthorized:
            checks.append(Check("token", False, token_kind_problem(token) or "the server refused the stored token",
                                f"ask for a new worker token and run `homefarm login --server {cfg.server_url}`"))
        except ClientError as error:
            checks.append(Check("token", False, str(error), "try again when the server answers"))
    client.close()
    return checks


def _unchecked_token(token: str | None, server_url: str, login: str) -> Check:
    """The token line when the server cannot be asked: whether one is stored at all."""
    if token is None:
        return Check("token", False, f"no worker token for {server_url} in the keyring", login)
    return Check("token", True, "stored; not checked, as the server does not answer", required=False)


def to_json(checks: list[Check]) -> dict:
    """`homefarm doctor --json`: every check, and whether all the required ones passed."""
    return {"ok": not any(c.required and not c.ok for c in checks),
            "checks": [{"name": c.name, "ok": c.ok, "required": c.required, "detail": c.detail,
                        **({"fix": c.fix} if not c.ok and c.fix else {})} for c in checks]}


def report(checks: list[Check], out=print) -> int:
    failed = 0
    for check in checks:
        mark = "ok  " if check.ok else ("FAIL" if check.required else "warn")
        out(f"[{mark}] {check.name:<8} {check.detail}")
        if not check.ok:
            out(f"         fix: {check.fix}")
            failed += check.required
    return 1 if failed else 0


def _warm_check(cfg: config_mod.Config, paths: config_mod.Paths) -> Check:
    """Whether Blender stays open between jobs, and whether it is open now."""
    if not cfg.warm:
        return Check("warm", True, "off: every job starts its own Blender", required=False)
    from worker_app.render.warm import running_pid
    pid = running_pid(paths.warm_dir / L.PIDFILE)
    now = f"open now (pid {pid}), holding its memory until {cfg.warm_idle_s:g} s without a job" if pid \
        else "not open now (it starts with the next job)"
    return Check("warm", True, f"on: Blender stays open between jobs; {now}", required=False)


def _awake_check(cfg: config_mod.Config, backend=None) -> Check:
    """Which mechanism keeps the PC awake while a job is held: taken and released once, as the worker would."""
    from worker_app.system import power
    if not cfg.keep_awake:
        return Check("awake", True, "keep awake: off (power.keep_awake = false); the PC may sleep in the middle "
                                    "of a render", required=False)
    found = power.probe(backend)
    return Check("awake", found.ok, f"keep awake: {found.detail}", found.fix, required=False)


def _pause_check(cfg: config_mod.Config, paths: config_mod.Paths) -> Check:
    """Would the worker step aside right now, and for which program? (A launcher taken for a game shows.)"""
    from worker_app.runtime import build_guard
    from worker_app.system.gpu import GpuMonitor, choose_provider

    guard = build_guard(cfg, paths, lambda: set(), [], GpuMonitor(choose_provider()[0]))
    decision = guard.evaluate()
    if not decision.paused:
        return Check("pause", True, "nothing asks homefarm to step aside now", required=False)
    programs = sorted({c.program for c in decision.causes if c.program})
    advice = (f"if {', '.join(programs)} is no game, run `homefarm config set guard.not_games "
              f"'[\"{programs[0]}\"]'` or choose \u201cNever pause for {programs[0]}\u201d in the tray menu"
              if programs else "see the reason; `homefarm resume` ends a pause you set")
    return Check("pause", False, decision.reason, advice, required=False)
