"""Stepping aside for the owner: pause detectors, schedules, the guard that combines them, energy per job."""

from worker_app.guard.causes import Cause, PauseDecision
from worker_app.guard.detectors import (DEFAULT_GAMES, DESKTOP_PROCESSES, GAME_FOLDER_MARKERS, LAUNCHER_FOLDERS,
                                        NOT_GAMES, DiskSpace,
                                        ForeignGpuLoad, FullScreenHint, GameDetector, OwnerActive, ProcessTable,
                                        ThermalGuard)
from worker_app.guard.guard import Guard
from worker_app.guard.manual import ManualPause, parse_duration, tomorrow_morning
from worker_app.guard.schedule import Schedule, Window

__all__ = ["Cause", "PauseDecision", "DEFAULT_GAMES", "DESKTOP_PROCESSES", "GAME_FOLDER_MARKERS", "LAUNCHER_FOLDERS",
           "NOT_GAMES", "DiskSpace",
           "ForeignGpuLoad", "FullScreenHint", "GameDetector", "OwnerActive", "ProcessTable", "ThermalGuard",
           "Guard", "ManualPause", "parse_duration", "tomorrow_morning", "Schedule", "Window"]
