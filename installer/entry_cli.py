"""The frozen console program, `homefarm-cli`: the commands, with output in the terminal."""
import sys

from worker_app.cli import main

sys.exit(main())
