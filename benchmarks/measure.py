"""Running one tool once and recording what it cost: time, CPU, memory and IMAP traffic."""

from __future__ import annotations

import re
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.dovecot import Dovecot, User, parse_rawlog_commands, strip_rawlog_timestamps

GNU_TIME = "/usr/bin/time"  # Debian package "time"
RAWLOG_SETTLE = 5.0  # seconds to wait for the server to finish writing a closed session's rawlog


@dataclass(frozen=True, slots=True)
class Process:
    """A finished child: its exit status, wall and CPU seconds, peak RSS (KiB) and output."""

    returncode: int
    wall: float
    cpu: float
    max_rss_kib: int
    stdout: str
    stderr: str


@dataclass(frozen=True, slots=True)
class Traffic:
    """What the client sent after login (commands by name) and the bytes each way."""

    commands: Counter[str]
    bytes_sent: int
    bytes_received: int

    @property
    def total_commands(self) -> int:
        return sum(self.commands.values())


@dataclass(frozen=True, slots=True)
class Sample:
    process: Process
    traffic: Traffic


def run_process(argv: Sequence[str], env: Mapping[str, str], cwd: Path, log_dir: Path) -> Process:
    """Run ``argv`` to completion under GNU time, which reports the tool's own CPU and peak RSS.

    ``os.wait4`` on a direct child would not do: Linux carries the forking process's
    memory high-water mark into the child's ``ru_maxrss`` across exec, so a tool started
    from this (large) process would report this process's memory instead of its own.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path, usage_path = log_dir / "stdout.txt", log_dir / "stderr.txt", log_dir / "usage.txt"
    wrapped = [GNU_TIME, "--format", "%U %S %M", "--output", str(usage_path), "--", *argv]
    with out_path.open("wb") as out, err_path.open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.run(wrapped, env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        wall = time.perf_counter() - start
    user, system, max_rss = usage_path.read_text().split()[-3:]  # after any "exited with status" line
    return Process(proc.returncode, wall, float(user) + float(system), int(max_rss),
                   out_path.read_text(errors="replace"), err_path.read_text(errors="replace"))


def settled_rawlogs(user: User) -> list[Path]:
    """The user's rawlog files once their sizes stop changing (the server writes them after the client left)."""
    deadline = time.monotonic() + RAWLOG_SETTLE
    previous: dict[Path, int] = {}
    while True:
        current = {path: path.stat().st_size for path in user.rawlog_dir.iterdir()}
        if current == previous or time.monotonic() > deadline:
            return sorted(current)
        previous = current
        time.sleep(0.2)


def read_traffic(user: User) -> Traffic:
    commands: Counter[str] = Counter()
    sent = received = 0
    for path in settled_rawlogs(user):
        data = strip_rawlog_timestamps(path.read_bytes())
        if path.suffix == ".in":
            commands.update(parse_rawlog_commands(data))
            sent += len(data)
        elif path.suffix == ".out":
            received += len(data)
    return Traffic(commands, sent, received)


def measure(server: Dovecot, user: User, argv: Sequence[str], env: Mapping[str, str], cwd: Path,
            log_dir: Path) -> Sample:
    """One measured run of a tool against ``user``'s mailbox, from a clean rawlog."""
    server.clear_rawlog(user)
    process = run_process(argv, env, cwd, log_dir)
    return Sample(process, read_traffic(user))


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def first_line(text: str, pattern: str = r"\S") -> str:
    """The first line of ``text`` matching ``pattern`` (for short error summaries)."""
    return next((line for line in text.splitlines() if re.search(pattern, line)), "")
