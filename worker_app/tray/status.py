"""What the tray shows for a worker snapshot: which icon, which tooltip, which status lines. No Qt here.

Everything is read from the snapshot's typed fields, never from the words of a message.
"""

from __future__ import annotations

import time

from worker_app.core import LinkProblem, Outcome, Snapshot, State

ICON_STATES = ("waiting", "rendering", "paused", "offline", "error")


def icon_state(snapshot: Snapshot, signed_in: bool = True) -> str:
    if not signed_in or snapshot.link.problem == LinkProblem.UNAUTHORIZED:
        return "error"
    if snapshot.busy:
        return "rendering"
    if snapshot.state == State.PAUSED or (snapshot.pause and snapshot.state == State.WAITING):
        return "paused"
    if snapshot.state in (State.BACKING_OFF, State.STOPPED, State.STOPPING, State.CONNECTING):
        return "offline"
    return "waiting"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def _retry(snapshot: Snapshot, now: float) -> str:
    retry_at = snapshot.link.retry_at
    return f"; retrying in {_duration(retry_at - now)}" if retry_at and retry_at > now else ""


def job_line(snapshot: Snapshot, now: float | None = None) -> str:
    """"Rendering job 42 — frame 3/10, 37 %, about 1 min left"; or what the worker does otherwise."""
    now = time.time() if now is None else now
    job = snapshot.job
    if snapshot.state == State.RENDERING and job:
        if job.suspended:
            return f"Job {job.job_id} waits while you use the PC"
        parts = []
        if job.frame_count:
            parts.append(f"frame {min(job.frames_done + 1, job.frame_count)}/{job.frame_count}")
        if job.percent is not None:
            parts.append(f"{job.percent:.0f} %")
        if job.eta_s:
            parts.append(f"about {_duration(job.eta_s)} left")
        return f"Rendering job {job.job_id}" + (" — " + ", ".join(parts) if parts else "")
    if snapshot.state == State.DOWNLOADING and job:
        return f"Downloading the scene of job {job.job_id}"
    if snapshot.state == State.UPLOADING and job:
        return f"Uploading job {job.job_id}"
    if snapshot.state == State.PAUSED:
        return snapshot.pause.reason if snapshot.pause else "Paused"
    if snapshot.held and snapshot.state == State.WAITING:
        if snapshot.held_until is None:
            return "Held by the server until it is released from its dashboard"
        return "Held by the server until " + time.strftime("%H:%M", time.localtime(snapshot.held_until))
    if snapshot.link.problem == LinkProblem.UNAUTHORIZED:
        return "The server refused this PC's token: sign in again"
    if snapshot.state == State.BACKING_OFF and snapshot.link.online:
        return "homefarm hit an error and tries again shortly; the log has the details"
    if snapshot.state == State.BACKING_OFF or (snapshot.state == State.UPLOADING and not snapshot.link.online):
        line = "Server unreachable"
        if snapshot.link.detail:  # what happened, in words: "nothing answers at …: is the job server running?"
            line += ": " + snapshot.link.detail.rstrip(".")
        rest = _retry(snapshot, now).removeprefix("; ") + ("; " if _retry(snapshot, now) else "") + \
            "rendered results are kept"
        return f"{line} {rest[0].upper()}{rest[1:]}" if line.endswith("?") else f"{line}; {rest}"
    if snapshot.state == State.UPLOADING:
        return "Sending results kept from before"
    if snapshot.state == State.WAITING:
        return "Waiting for a job (Blender is warm)" if snapshot.blender_warm else "Waiting for a job"
    if snapshot.state == State.CONNECTING:
        return "Connecting to the server"
    if snapshot.state == State.STOPPING:
        return "Stopping"
    return "Stopped"


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
    if g.get("power_w") is None:
        parts.append("no power reading")  # said, rather than a made-up figure: energy and cost stay empty
    return f"{g.get('name', 'GPU')}: " + ", ".join(parts)


def today_line(jobs: int, energy_wh: float, price_per_kwh: float, currency: str) -> str:
    cost = energy_wh / 1000 * price_per_kwh
    return f"Today: {jobs} job{'s' if jobs != 1 else ''}, {energy_wh / 1000:.2f} kWh, {cost:.2f} {currency}"


def tooltip(snapshot: Snapshot, signed_in: bool = True) -> str:
    if not signed_in:
        return "homefarm — sign in needed"
    text = "homefarm — " + job_line(snapshot)
    if snapshot.busy and not snapshot.link.online:
        text += " (server unreachable; results are kept)"
    awake = "; keeping the PC awake" if snapshot.keeping_awake else ""
    return text[:127 - len(awake)] + awake  # Windows cuts tray tooltips at 127 characters


def config_problem(error) -> str:
    """The tray's line for a config file the owner must fix: the key, the value and what is allowed."""
    detail = getattr(error, "detail", str(error))
    if detail.startswith("is not valid TOML"):
        return "The config file is not valid TOML" + detail.removeprefix("is not valid TOML") + \
            "; open it to fix it"
    joiner = " = " if " is not allowed; it " in detail else ": "
    return f"Fix the config file: {error.key}{joiner}{detail}"


def job_notice(report) -> tuple[str, str] | None:
    """The notice for a job that ended (when the owner asked for them): done or failed; None otherwise."""
    took = sum(report.stages.values())
    if report.outcome == Outcome.DONE:
        return f"Job {report.job_id} done", f"Rendered and sent in {_duration(took)}."
    if report.outcome == Outcome.FAILED:
        return f"Job {report.job_id} failed", report.reason or "The log has the details."
    return None
