"""The frozen tray app's entry point (windowed): `homefarm` with arguments still runs the commands."""
import sys

from worker_app.cli import main

sys.exit(main())
