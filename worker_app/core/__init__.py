"""The worker's core: the loop that owns the worker's state, one job's run, the heartbeat, the pause
policies and the durable outbox. Nothing here imports Qt."""

from worker_app.core.job import JobReport
from worker_app.core.folders import Folders
from worker_app.core.loop import Worker
from worker_app.core.settings import Settings
from worker_app.core.state import (BUSY_STATES, JobProgress, LastJob, Link, LinkProblem, Outcome, Pause, Snapshot,
                                   State, Update)

__all__ = ["JobReport", "Folders", "Settings", "Worker", "BUSY_STATES", "JobProgress", "LastJob", "Link",
           "LinkProblem", "Outcome", "Pause", "Snapshot", "State", "Update"]
