"""What reaches the user's terminal: control characters escaped, secrets redacted, progress.

Every line the command prints passes through ``Printable``; mail text is untrusted and
must not retitle, clear or reorder the terminal.
"""

from __future__ import annotations

import io
import re
import sys
from typing import TextIO

from mailrules.errors import redact


# C0 controls but tab and newline, DEL, C1 controls, and the bidirectional overrides: a
# Subject is untrusted and must not retitle, clear or reorder the user's terminal.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    r"""Text safe for a terminal: every control character written as an escape.

    >>> printable("Re: \x1b]0;owned\x07 hi\n")
    'Re: \\x1b]0;owned\\x07 hi\n'
    """
    return _UNPRINTABLE.sub(_escape, text)


def _escape(found: re.Match[str]) -> str:
    # DEL and C1 as \u00XX, which JSON also reads (json.dumps never leaves C0 raw, so \xXX is safe there).
    char = found.group()
    return f"\\u{ord(char):04x}" if 0x7f <= ord(char) <= 0x9f else char.encode("unicode_escape").decode("ascii")


class Printable(io.TextIOBase):
    """A text stream that escapes control characters on the way out."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> int:
        # Every line shown goes through here, so a password a server echoed back in an
        # error, a trace or a notice is redacted whichever layer passed it on.
        return self._stream.write(printable(redact(text)))

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()


class TerminalProgress:
    """A one-line "working on FOLDER" indicator, written to the real terminal.

    Only on a terminal (never in a file or under cron), and straight to it: the escaped
    output stream would print the cursor controls literally.
    """

    def __init__(self, terminal: TextIO):
        self.terminal = terminal

    @classmethod
    def if_terminal(cls) -> TerminalProgress | None:
        terminal = sys.__stderr__
        return cls(terminal) if terminal is not None and terminal.isatty() else None

    def __call__(self, folder: str) -> None:
        print(f"\r\x1b[Kworking on {printable(folder)} …", end="", file=self.terminal, flush=True)

    def clear(self) -> None:
        print("\r\x1b[K", end="", file=self.terminal, flush=True)
