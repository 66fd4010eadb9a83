"""Every delay, limit and size the worker and the tray use, in one place. Times are in seconds, sizes in bytes.

What the worker and the server agree on (claim waits, leases, heartbeats, a job's limits) is the protocol's:
``worker_app/protocol/limits.py`` owns it, and it is named here too for the worker's code.
"""

from worker_app.protocol.limits import *  # noqa: F401,F403  (the protocol's values, one owner)


CLAIM_WAIT_SETTING_MAX = 60.0  # what an owner may set (worker.claim_wait_s); the server's cap still applies
# A 502/504 that ends a claim after at least this long is a proxy's timeout, not a failing server.
GATEWAY_CUT_MIN = 3.0
# After a proxy cut a claim after T s, claims wait this share of T.
GATEWAY_CUT_SHARE = 0.75
# The client's read timeout on a claim is the wait plus this margin, so a silent server cannot hang it.
CLAIM_READ_MARGIN = 10.0


# Every request has a connect and a read timeout.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
UPLOAD_READ_TIMEOUT = 120.0

# A hard limit on one whole exchange, however slowly a server trickles its answer: a request gets this
# long, plus the long poll's wait, plus its body at no less than MIN_TRANSFER_RATE bytes per second.
REQUEST_DEADLINE = 60.0
MIN_TRANSFER_RATE = 100_000

# A worker too old for its server signs on again this often, to learn whether it is accepted now.
UPDATE_RECHECK = 600.0

# Network errors back off exponentially with full jitter, capped.
BACKOFF_BASE = 1.0
BACKOFF_CAP = 30.0  # a worker back online within half a minute of its server

# Blender.
BLENDER_VERSION_TIMEOUT = 20.0
# The session ends (sign-out, shutdown, an installer closing homefarm): Windows kills the process soon after Qt's
# aboutToQuit (qtbase qwindowscontext.cpp, WM_ENDSESSION), so the worker stops within this, job released.
SESSION_END_STOP_S = 4.0
BLENDER_STOP_GRACE = 2.0  # asked to stop, it gets this long before the whole tree is killed
BLENDER_KILL_WAIT = 5.0
# A warm Blender (worker_app/render/warm.py) ends after this long without a job (an idle PC holds no Blender
# and no VRAM), after this many jobs, or when its processes hold more than this much memory after a job.
WARM_IDLE_S = 120.0
WARM_MAX_JOBS = 500
WARM_MAX_RSS = 4 * 1024**3
WARM_MAX_VRAM_SHARE = 0.5  # an idle warm Blender holding more of a GPU's memory than this share ends
WARM_QUIT_WAIT = 1.0  # an idle warm Blender asked to quit gets this long before it is stopped
LOG_TAIL_LINES = 40


# Zip scenes: refused when they would unpack too large or too compressed (zip bombs).
ZIP_MAX_TOTAL = 16 * 1024**3
ZIP_MAX_MEMBERS = 20_000
# Windows' classic path limit is 260 characters; a job folder's own path takes up to about 100 of them.
ZIP_MAX_NAME = 150
ZIP_MAX_RATIO = 200

# Streaming.
CHUNK_SIZE = 1024 * 1024

# The guard and the tray.
MORNING_HOUR = 8  # "pause until tomorrow morning" ends at this hour
UNREACHABLE_NOTICE = 180.0  # the tray tells the owner once the server has been unreachable this long
TRAY_RETRY = 2.0  # how often the tray looks for a panel that starts after it
STATS_REFRESH = 60.0  # how often the tray's "today" line is read again
