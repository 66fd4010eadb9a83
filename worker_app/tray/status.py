"""What the tray shows for a worker snapshot: which icon, which tooltip, which status lines. No Qt here."""

from __future__ import annotations

from worker_app.worker import Snapshot, State

ICON_STATES = ("waiting", "rendering", "paused", "offline", "error")


def icon_state(snapshot: Snapshot, signed_in: bool = True) -> str:
    if not signed_in:
        return "error"
    if snapshot.state in (State.DOWNLOADING, State.RENDERING, State.UPLOADING):
        return "rendering"
    if snapshot.state == State.PAUSED or (snapshot.paused and snapshot.state == State.WAITING):
        return "paused"
    if snapshot.state == State.BACKING_OFF:
        return "error" if "sign in again" in snapshot.message else "offline"
    if snapshot.state in (State.STOPPED, State.STOPPING, State.CONNECTING):
        return "offline"
    return "waiting"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def job_line(snapshot: Snapshot) -> str:
    """"Rendering job 42 — frame 3/10, 37 %, about 1 min left"; or what the worker does otherwise."""
    if snapshot.state == State.RENDERING and snapshot.job_id:
        p = snapshot.progress
        parts = []
        if p.get("frame_count"):
            current = min((p.get("frames_done") or 0) + 1, p["frame_count"])
            parts.append(f"frame {current}/{p['frame_count']}")
        if p.get("percent") is not None:
            parts.append(f"{p['percent']:.0f} %")
        if p.get("eta_s"):
            parts.append(f"about {_duration(p['eta_s'])} left")
        return f"Rendering job {snapshot.job_id}" + (" — " + ", ".join(parts) if parts else "")
    if snapshot.state == State.DOWNLOADING and snapshot.job_id:
        return f"Downloading the scene of job {snapshot.job_id}"
    if snapshot.state == State.UPLOADING and snapshot.job_id:
        return f"Uploading job {snapshot.job_id}"
    if snapshot.state == State.PAUSED:
        return snapshot.paused or "Paused"
    if snapshot.state == State.WAITING:
        return "Waiting for a job"
    if snapshot.state == State.BACKING_OFF:
        return snapshot.message[:1].upper() + snapshot.message[1:]
    if snapshot.state == State.CONNECTING:
        return "Connecting to the server"
    return snapshot.message[:1].upper() + snapshot.message[1:] if snapshot.message else "Stopped"


def gpu_line(snapshot: Snapshot) -> str:
    g = snapshot.gpu
    if not g:
        return f"GPU: {snapshot.gpu_problem}" if snapshot.gpu_problem else "GPU: no figures yet"
    parts = []
    if g.get("load") is not None:
        parts.append(f"{g['load']} % load")
    if g.get("temp_c") is not None:
        parts.append(f"{g['temp_c']} °C")
    if g.get("power_w") is not None:
        parts.append(f"{g['power_w']:.0f} W")
    if g.get("vram_used") is not None and g.get("vram_total"):
        parts.append(f"{g['vram_used'] / 1024**3:.1f}/{g['vram_total'] / 1024**3:.0f} GB")
    return f"{g.get('name', 'GPU')}: " + ", ".join(parts)


def today_line(jobs: int, energy_wh: float, price_per_kwh: float, currency: str) -> str:
    cost = energy_wh / 1000 * price_per_kwh
    return f"Today: {jobs} job{'s' if jobs != 1 else ''}, {energy_wh / 1000:.2f} kWh, {cost:.2f} {currency}"


def tooltip(snapshot: Snapshot, signed_in: bool = True) -> str:
    if not signed_in:
        return "homefarm — sign in needed"
    return "homefarm — " + job_line(snapshot)
