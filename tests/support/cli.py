"""Running the ``mailrules`` command in-process with its output captured, from one thread or many."""

from __future__ import annotations

import contextlib
import io
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TextIO


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
