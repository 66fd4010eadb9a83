"""The worker protocol v1: every message the server and the worker exchange, and its validation.

The reference server validates a job when it is submitted and the worker validates it again when it
is claimed, both with these functions, so the two cannot drift apart. A bad value raises
``ValidationError`` whose ``field`` is the dotted path of the culprit (``render.samples``), which the
server returns in its 422 and the worker puts in the reason it fails a job with.

docs/protocol.md describes the same messages for people; docs/worker-api.yaml for machines.
"""

from worker_app.protocol.fields import *  # noqa: F401,F403
from worker_app.protocol.job import *  # noqa: F401,F403
from worker_app.protocol.limits import *  # noqa: F401,F403
from worker_app.protocol.messages import *  # noqa: F401,F403
