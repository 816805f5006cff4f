"""Killing the server's side of a session: Dovecot's ``imap`` process for one user, by SIGKILL.

A dropped connection leaves the server's work either done or not; a killed ``imap``
process can leave it half done -- part of a COPY/MOVE batch linked into the destination,
not yet indexed, the source not yet expunged.  The instance runs with
``verbose_proctitle`` so each ``imap`` process's title names its user and the command it
is executing (``dovecot-<instance>/imap [user7 127.0.0.1 UID MOVE]``): the killer picks
the test user's processes among the children of this instance's master only, so other
Dovecots on the machine are never touched.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from tests.robustness.harness import QuickDovecot
from tests.support.dovecot import User

T = TypeVar("T")
POLL = 0.0005  # seconds between looks at the process titles
# Planning only EXAMINEs, SEARCHes and FETCHes; any of these means execution has begun
# (a short SELECT alone may come and go between two looks).
EXECUTION_COMMANDS = (" SELECT", " UID STORE", " STATUS", " UID MOVE", " UID COPY", " UID EXPUNGE")


class CrashableDovecot(QuickDovecot):
    """A quick test Dovecot whose ``imap`` process titles show user and current command."""

    def config_text(self) -> str:
        return super().config_text() + "verbose_proctitle = yes\n"


def imap_processes(server: CrashableDovecot, user: User) -> dict[int, str]:
    """pid -> process title of the ``imap`` processes serving ``user`` on this instance."""
    master = server._master_pid()
    found: dict[int, str] = {}
    if master is None:
        return found
    marker = f"/imap [{user.username} "
    for pid in _children(master):
        with contextlib.suppress(OSError):
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            if marker in title:
                found[pid] = title
    return found


def _children(parent: int) -> list[int]:
    """The parent's child processes: from /proc's children list (cheap enough to poll every
    half millisecond), else by reading every process's parent."""
    with contextlib.suppress(OSError):
        return [int(pid) for pid in Path(f"/proc/{parent}/task/{parent}/children").read_text().split()]
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == parent:
                    children.append(int(entry.name))
    return children


@dataclass
class Kill:
    """What the killer did: whether it struck, after how long, and what the process was doing."""

    delay: float
    started: float | None = None  # time.monotonic() when execution started
    struck: bool = False
    title: str = ""


class Killer:
    """Watches ``user``'s ``imap`` processes; once execution starts (a command that changes mail), waits
    ``delay`` seconds and SIGKILLs whatever process serves the user at that moment."""

    def __init__(self, server: CrashableDovecot, user: User, delay: float):
        self.server, self.user = server, user
        self.kill = Kill(delay)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="server-killer", daemon=True)

    def __enter__(self) -> Killer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.is_set():
            processes = imap_processes(self.server, self.user)
            if self.kill.started is None and any(command in title for title in processes.values()
                                                        for command in EXECUTION_COMMANDS):
                self.kill.started = time.monotonic()
            started = self.kill.started
            if started is not None and time.monotonic() - started >= self.kill.delay and processes:
                for pid, title in processes.items():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                        self.kill.struck, self.kill.title = True, title
                return
            time.sleep(POLL)


def killed_during(server: CrashableDovecot, user: User, delay: float, run: Callable[[], T]) -> tuple[T, Kill]:
    """``run()`` while a killer strikes ``delay`` seconds into the execution phase."""
    with Killer(server, user, delay) as killer:
        result = run()
    return result, killer.kill


def random_delay(rng: random.Random, window: float) -> float:
    """A moment in the first ``window`` seconds of execution, uniformly."""
    return rng.uniform(0.0, window)
