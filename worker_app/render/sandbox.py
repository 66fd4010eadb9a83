"""Confinement of Blender's writes by the OS, where it needs no admin rights: Landlock on Linux (5.13+).

Blender may then write only into the job's folder, its own settings folder, a cache folder for GPU kernels,
and devices; every other write fails with "permission denied", whatever a scene or a bug tries. It adds to
``blender_scripts/confine.py``, which points the scene's own paths into the job's folder. Reading is not
restricted. On other systems, or a kernel without Landlock, Blender runs as before (said once in the log).
https://docs.kernel.org/userspace-api/landlock.html
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("homefarm.blender")

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446  # the same on x86-64 and arm64
_VERSION_FLAG = 1  # LANDLOCK_CREATE_RULESET_VERSION
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

# LANDLOCK_ACCESS_FS_*: every kind of write; reads and execution stay free.
WRITE_FILE, REMOVE_DIR, REMOVE_FILE = 1 << 1, 1 << 4, 1 << 5
MAKE = sum(1 << bit for bit in range(6, 13))  # char, dir, reg, sock, fifo, block, sym
REFER, TRUNCATE = 1 << 13, 1 << 14  # ABI 2, ABI 3


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 where there is none."""
    if _LIBC is None:
        return 0
    version = _LIBC.syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_VERSION_FLAG))
    return max(int(version), 0)


class WriteConfinement:
    """A Landlock ruleset made in the parent; ``preexec`` applies it in the child between fork and exec."""

    def __init__(self, writable: list[Path], devices: tuple[str, ...] = ("/dev", "/proc")):
        self.fd = -1
        abi = landlock_abi()
        if abi < 1:
            return
        handled = WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE | (REFER if abi >= 2 else 0) \
            | (TRUNCATE if abi >= 3 else 0)
        assert _LIBC is not None  # landlock_abi() is 0 without it
        attr = ctypes.c_uint64(handled)  # struct landlock_ruleset_attr, handled_access_fs only
        fd = _LIBC.syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(8), ctypes.c_uint32(0))
        if fd < 0:
            log.info("Landlock is not available (%s); Blender's writes are kept in the job's folder by "
                     "homefarm's script alone", os.strerror(ctypes.get_errno()))
            return
        self.fd = int(fd)
        rules = [(p, handled) for p in writable] + [(Path(d), WRITE_FILE | (TRUNCATE if abi >= 3 else 0))
                                                    for d in devices] + [(Path("/dev/shm"), handled)]
        for path, access in rules:
            self._allow(path, access)

    def _allow(self, path: Path, access: int) -> None:
        try:
            parent = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            return  # a folder that is not there needs no rule
        try:
            rule = _PathBeneath(access, parent)
            assert _LIBC is not None
            if _LIBC.syscall(_ADD_RULE, ctypes.c_int(self.fd), ctypes.c_int(_RULE_PATH_BENEATH),
                             ctypes.byref(rule), ctypes.c_uint32(0)) < 0:
                log.warning("Landlock refused a rule for %s: %s", path, os.strerror(ctypes.get_errno()))
        finally:
            os.close(parent)

    @property
    def active(self) -> bool:
        return self.fd >= 0

    def preexec(self) -> None:
        """In the child: no new privileges (Landlock needs it of an unprivileged process), then the rules."""
        if self.fd >= 0 and _LIBC is not None:
            _LIBC.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
            _LIBC.syscall(_RESTRICT_SELF, ctypes.c_int(self.fd), ctypes.c_uint32(0))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
