"""What the worker and the server agree on: how long a claim waits, how long a lease holds, how often the
worker beats, and a job's limits. Times are in seconds, sizes in bytes. The server and the protocol's
checks read these; the worker reads them through ``worker_app.constants``."""

# Long poll: how long a worker's claim may wait at the server before a 204.
# Proxies and CDNs in front of a server often cut idle responses at 30 s (some at 20): a claim waits less.
CLAIM_WAIT_DEFAULT = 20.0
CLAIM_WAIT_MAX = 25.0  # the reference server's cap

# Leases: a job is held for LEASE_TTL after each heartbeat; the worker beats every HEARTBEAT_INTERVAL.
LEASE_TTL = 60.0
HEARTBEAT_INTERVAL = 5.0
# A new lease lasts this many heartbeat intervals until the worker's first heartbeat (which it sends at once).
FIRST_LEASE_BEATS = 3

# A job's own limits when its spec names none.
JOB_TIMEOUT_DEFAULT = 3600.0
SILENCE_TIMEOUT_DEFAULT = 600.0

# Job spec limits: refused at submit and again at claim.
MAX_FRAMES = 10_000
MAX_FRAME_NUMBER = 1_048_574  # Blender's MAXFRAME
MAX_RESOLUTION = 16_384
MAX_SAMPLES = 1_000_000
MAX_SCENE_SIZE = 8 * 1024**3
MAX_SPEC_BYTES = 256 * 1024
MAX_JOB_TIMEOUT = 7 * 24 * 3600.0

__all__ = ["CLAIM_WAIT_DEFAULT", "CLAIM_WAIT_MAX", "LEASE_TTL", "HEARTBEAT_INTERVAL", "FIRST_LEASE_BEATS",
           "JOB_TIMEOUT_DEFAULT", "SILENCE_TIMEOUT_DEFAULT", "MAX_FRAMES", "MAX_FRAME_NUMBER", "MAX_RESOLUTION",
           "MAX_SAMPLES", "MAX_SCENE_SIZE", "MAX_SPEC_BYTES", "MAX_JOB_TIMEOUT"]
