"""The windowed program (``homefarm.exe`` on Windows, the tray) given a command.

A windowed program has no console: a command's output goes nowhere and ``sys.stdin`` is None, so
``homefarm.exe doctor`` printed nothing and ``homefarm.exe login`` died. The commands belong to the console
program, ``homefarm-cli.exe``; the windowed one says so in a message box instead of failing silently.
"""

from __future__ import annotations

import sys

MB_ICONINFORMATION = 0x40


def message_box(title: str, text: str) -> None:
    """Windows' own message box: no Qt needed, nothing to set up."""
    import ctypes
    ctypes.windll.user32.MessageBoxW(None, text, title, MB_ICONINFORMATION)  # type: ignore[attr-defined]


_UNSET = object()


def console_missing(argv: list[str], stdout=_UNSET, show=message_box) -> int | None:
    """When a command was given to a program without a console (its ``stdout`` is None): tells where to run
    it, and returns the exit status (2); None when there is nothing to say."""
    stdout = sys.stdout if stdout is _UNSET else stdout
    if len(argv) < 2 or stdout is not None or argv[1:] == ["activity"]:  # a window: no console needed
        return None
    command = " ".join(argv[1:])
    show("homefarm", f"homefarm.exe is the tray app: it has no window for the output of "
                     f"\u201chomefarm {command}\u201d.\n\nRun the command in a terminal (PowerShell or Command "
                     f"Prompt) with the console program instead:\n\n    homefarm-cli {command}")
    return 2
