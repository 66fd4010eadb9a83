"""The frozen tray app's entry point (windowed, homefarm.exe). Given a command it has no console to print to:
it says to use homefarm-cli instead (worker_app/windowed.py)."""
import sys

from worker_app.windowed import console_missing

refused = console_missing(sys.argv)
if refused is not None:
    sys.exit(refused)

from worker_app.cli import main  # noqa: E402 - only when there is something to run

sys.exit(main())
