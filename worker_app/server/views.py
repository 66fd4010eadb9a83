"""What the web app's API shows: a job, its outputs and its webhook deliveries, built from the store's rows.

The store reads and writes rows; this module alone decides the JSON a job is shown as (docs/app-api.yaml).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

ENDED_STATES = ("done", "failed", "canceled")


@dataclass(frozen=True)
class OutputRecord:
    """An output the server holds for a job."""
    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Retention:
    """How long outputs are kept after their job ended: failed and canceled jobs', and every job's (0: kept)."""
    keep_failed: float
    keep_outputs: float


def job_view(row: Mapping[Any, Any], stored: Sequence[OutputRecord] | None, retention: Retention) -> dict[str, Any]:
    """A job as the web app sees it; with ``stored`` (a single job's view) its outputs and log tail too, and
    when retention deletes (or deleted) its outputs."""
    view: dict[str, Any] = {
        "id": str(row["id"]),
        "state": row["state"],
        "tag": row["tag"],
        "priority": row["priority"],
        "attempts": row["attempts"],
        "max_attempts": row["max_attempts"],
        "worker_id": row["worker_id"],
        "progress": json.loads(row["progress"]) if row["progress"] else None,
        "error": row["error"],
        "stats": json.loads(row["stats"]) if row["stats"] else None,
        "warnings": json.loads(row["warnings"]) if row["warnings"] else [],
        "created": row["created"],
        "updated": row["updated"],
        "claimed": row["claimed"],
        "finished": row["finished"],
        "spec": json.loads(row["spec"]),
    }
    if stored is not None:
        view["outputs"] = [asdict(output) for output in stored]
        view["log_tail"] = row["log_tail"]
    view["outputs_deleted"] = row["outputs_deleted"]
    keep = retention.keep_failed if row["state"] in ("failed", "canceled") else retention.keep_outputs
    ended = row["finished"] is not None and row["state"] in ENDED_STATES
    view["outputs_expire_at"] = row["finished"] + keep if ended and row["has_outputs"] and keep > 0 else None
    return view


def delivery_view(row: Mapping[Any, Any]) -> dict[str, Any]:
    """One webhook delivery of a job, as its view lists them."""
    return {"url": row["url"], "event": row["event"], "attempts": row["attempts"], "delivered": row["delivered"],
            "next_attempt": row["next_at"], "last_error": row["last_error"]}
