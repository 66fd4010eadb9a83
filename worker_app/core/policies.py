"""What a running job does when the owner needs the PC: one small class per pause policy.

A new policy is one more class here and its name in the config's allowed values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from worker_app.core.state import Outcome

if TYPE_CHECKING:
    from worker_app.core.job import JobRun


class PausePolicy:
    name = ""
    renders_while_paused = False  # Blender goes on with the job during a pause (the PC is then kept awake)

    def on_pause(self, job: JobRun, reason: str) -> None:
        """The pause began while ``job`` runs."""

    def on_resume(self, job: JobRun) -> None:
        """The pause ended while ``job`` runs."""

    def before_render(self, job: JobRun, reason: str) -> None:
        """Blender is about to start while paused for ``reason``."""


class Requeue(PausePolicy):
    """Stop Blender and give the job back to the queue: the GPU is the owner's at once."""
    name = "requeue"

    def on_pause(self, job: JobRun, reason: str) -> None:
        job.end(Outcome.RELEASED, reason)

    def before_render(self, job: JobRun, reason: str) -> None:
        job.end(Outcome.RELEASED, reason)


class Suspend(PausePolicy):
    """Freeze Blender where it is (its GPU memory stays allocated) and thaw it afterwards."""
    name = "suspend"

    def on_pause(self, job: JobRun, reason: str) -> None:
        job.suspend()

    def on_resume(self, job: JobRun) -> None:
        job.unsuspend()

    def before_render(self, job: JobRun, reason: str) -> None:
        job.wait_for_resume()


class Finish(PausePolicy):
    """Let the running job finish; claim nothing new until the pause ends."""
    name = "finish"
    renders_while_paused = True


POLICIES: dict[str, PausePolicy] = {p.name: p for p in (Requeue(), Suspend(), Finish())}
