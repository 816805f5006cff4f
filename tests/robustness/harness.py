"""Shared helpers of the robustness tests: quick servers, workspaces, and the CLI run in-process."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from tests.support.dovecot import Dovecot, User

PASSWORD_ENV = "MAILRULES_ROBUSTNESS_PASSWORD"
FAST_SCRATCH = Path("/dev/shm")


class QuickDovecot(Dovecot):
    """A test Dovecot for sweeps of hundreds of short runs: it never fsyncs (no test survives
    a power cut anyway) and keeps no rawlog (the fault proxy counts commands instead), so the
    runs don't wait on the disk."""

    def config_text(self) -> str:
        kept = [line for line in super().config_text().splitlines() if not line.strip().startswith("rawlog_dir")]
        return "\n".join(kept) + "\nmail_fsync = never\n"


def scratch_root(fallback: Path) -> Path:
    """Where many short-lived state databases go: memory when the machine has /dev/shm."""
    if FAST_SCRATCH.is_dir() and os.access(FAST_SCRATCH, os.W_OK):
        return Path(tempfile.mkdtemp(prefix="mailrules-robustness-", dir=FAST_SCRATCH))
    return fallback


@dataclass(frozen=True, slots=True)
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(args: Sequence[str]) -> CliResult:
    """``mailrules ARGS`` in this process, with its output captured (per thread inside ``threads_output()``)."""
    from mailrules.cli import main

    out, err = io.StringIO(), io.StringIO()
    with _captured(out, err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse exits on usage errors
            code = int(exc.code or 0)
    return CliResult(code, out.getvalue(), err.getvalue())


class _PerThreadStream(io.TextIOBase):
    """Stands in for sys.stdout/sys.stderr: each thread writes to the buffer it registered."""

    def __init__(self, fallback: TextIO):
        self.fallback = fallback
        self.local = threading.local()

    def target(self) -> TextIO:
        return getattr(self.local, "buffer", None) or self.fallback

    def write(self, text: str) -> int:
        return self.target().write(text)

    def flush(self) -> None:
        self.target().flush()

    def isatty(self) -> bool:
        return False


class _Routing:
    """The per-thread streams while ``threads_output()`` is active.

    ``main()`` wraps sys.stdout/sys.stderr itself (to escape control characters); with
    several threads those wrappers interleave, so the streams to register with are
    remembered here rather than read back from ``sys``.
    """

    streams: tuple[_PerThreadStream, _PerThreadStream] | None = None


@contextlib.contextmanager
def threads_output() -> Iterator[None]:
    """Let several threads call ``run_cli`` at once: redirect_stdout swaps one global for everyone."""
    saved = sys.stdout, sys.stderr
    _Routing.streams = (_PerThreadStream(sys.stdout), _PerThreadStream(sys.stderr))
    sys.stdout, sys.stderr = _Routing.streams  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
        _Routing.streams = None


@contextlib.contextmanager
def _captured(out: io.StringIO, err: io.StringIO) -> Iterator[None]:
    streams = _Routing.streams
    if streams is None:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield
        return
    for stream, buffer in zip(streams, (out, err)):
        stream.local.buffer = buffer
    try:
        yield
    finally:
        for stream in streams:
            stream.local.buffer = None


def accounts_yaml(host: str, port: int, username: str, *, tls: str = "none", ca_file: Path | None = None,
                  name: str = "t") -> str:
    ca = f", ca_file: {ca_file}" if ca_file is not None else ""
    return (
        "accounts:\n"
        f"  {name}:\n"
        f"    imap: {{host: {host}, port: {port}, tls: {tls}, username: {username}, password_env: {PASSWORD_ENV}{ca}}}\n"
        f"    addresses: [{username}@example.com]\n"
    )


@dataclass(frozen=True, slots=True)
class Workspace:
    """The files one ``mailrules run`` needs: rules, accounts and state, in a directory of their own."""

    root: Path
    rules: Path

    @property
    def accounts(self) -> Path:
        return self.root / "accounts.yaml"

    @property
    def state(self) -> Path:
        return self.root / "state.sqlite3"

    def point_at(self, host: str, port: int, user: User, **options: object) -> Workspace:
        self.accounts.write_text(accounts_yaml(host, port, user.username, **options))  # type: ignore[arg-type]
        return self

    def run_args(self, *extra: str, command: str = "run") -> list[str]:
        args = [command, str(self.rules), "--accounts", str(self.accounts), "--account", "t", "--state", str(self.state)]
        return args + (["--yes"] if command == "run" else []) + list(extra)


def workspace(root: Path, rules_text: str) -> Workspace:
    root.mkdir(parents=True, exist_ok=True)
    rules = root / "rules.yaml"
    rules.write_text(rules_text)
    return Workspace(root, rules)
