"""Every file and folder homefarm keeps on the PC, named once: the data dir's, and each job's folder's.

``config.Paths`` puts them under the platform's folders (or ``HOMEFARM_HOME``); the worker, doctor, the tray
and the Blender runs take their names from here, so that renaming one is one change.
"""

# The data dir
JOBS = "jobs"  # one folder per job (below)
OUTBOX = "outbox.sqlite3"  # what the server must still learn: outputs and final reports (core/outbox.py)
WARM = "warm"  # the warm Blender's folder: its pid file and temporary files (render/warm.py)
PAUSE = "pause.json"  # the owner's pause (`homefarm pause`, the tray), read by the guard (guard/manual.py)
STATS = "stats.sqlite3"  # jobs, render time and energy per day, GPU minutes, pauses (guard/energy.py)
THUMBNAILS = "thumbnails"  # a small copy of each job's first output, for the activity window (tray/thumbnails.py)
TRAY_LOCK = "tray.lock"  # one tray per user (tray/single.py)
SERVER = "server"  # `homefarm serve`'s own data, when it runs on this PC

# The cache dir
SCENES = "scenes"  # scenes by SHA-256 (render/assets.py)

# A job's folder
LEASE = "lease.json"  # the lease being worked on: found at the next start after a crash, and given back
OUTPUTS = "out"  # what Blender writes, and the only folder outputs are uploaded from
TMP = "tmp"  # Blender's temporary folder and its crash log
JOB_FILE = "job.json"  # the job as the bundled script reads it
PIDFILE = "blender.pid"  # Blender's pid and start time, to end an orphan at the next start
LOG = "blender.log"  # everything Blender printed
REDIRECTED = "redirected.json"  # the scene's write paths pointed into the job's folder
