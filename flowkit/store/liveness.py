"""Is the process that runs a run still there? A run without an end whose process is gone was
interrupted (SIGKILL, a crash, a lost machine): it shows so, and ``gc --keep`` treats it as ended.

A run header names its process by pid, host and start time (a pid is used again by later
processes; its start time tells them apart). On the same host that is checked exactly; from
another host only the run's heartbeat can tell (``store.journal`` touches it while the run
lives), so a run there counts as alive until its heartbeat is older than ``STALE_SECONDS``.
"""

from __future__ import annotations

import functools
import os
import socket

HEARTBEAT_SECONDS = 15.0  # how often a live run touches its heartbeat
STALE_SECONDS = 300.0  # a heartbeat older than this (clocks of two hosts may differ): the run is gone


@functools.lru_cache(maxsize=1)
def this_host() -> str:
    return socket.gethostname()


@functools.lru_cache(maxsize=1)
def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), or None off Linux."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read().decode(errors="replace")
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def start_token(pid: int) -> str | None:
    """When process ``pid`` started, as text that no later process with that pid shares."""
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 20:
        return None
    return f"{_boot_id()}:{fields[19]}"  # field 22 of /proc/<pid>/stat: start time in ticks since boot


def this_process() -> tuple[int, str, str | None]:
    """pid, host and start token of this process, for a run header."""
    pid = os.getpid()
    return pid, this_host(), start_token(pid)


def process_alive(pid: int, host: str | None, token: str | None) -> bool | None:
    """True while the process runs, False once it is gone, None where this host cannot tell."""
    if host != this_host():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, as another user's process
    except OSError:
        return None
    fields = _stat_fields(pid)
    if fields is not None and fields and fields[0] in ("Z", "X"):
        return False  # a zombie: dead, not yet reaped
    if token is not None and fields is not None:
        return start_token(pid) == token
    return True


def heartbeat_fresh(last: float | None, now: float) -> bool:
    """A run on another host is taken as alive while its last sign of life is recent."""
    return last is not None and now - last < STALE_SECONDS
