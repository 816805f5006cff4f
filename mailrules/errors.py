"""Errors users see.  Each class carries the exit code the command line returns for it.

    MailrulesError                 exit 1
    ├── RuleFileError (problems)   exit 2  rule file, test file or accounts file invalid
    ├── UsageError                 exit 2  bad command-line arguments or missing files
    ├── BackendError               exit 3  transient: network, server down or busy -- run again
    │   ├── ConnectionLost         exit 3  the connection dropped mid-command
    │   ├── MissingFolder          exit 3  a destination vanished (renamed or deleted meanwhile)
    │   ├── MessagesVanished       exit 3  another client expunged messages a COPY/MOVE named
    │   └── PermanentError         exit 6  running again won't help until someone fixes something
    │       ├── AuthenticationFailed       wrong password, refused or expired token
    │       ├── ConfigurationError         missing Maildir, unusable ca_file, TLS not offered
    │       ├── CapabilityError            the server or mailbox lacks something the rules need
    │       ├── FolderRefused              a folder name this server can't hold
    │       └── StateStoreError            the state directory is full, read-only or locked
    ├── PlanRefused                exit 4  the reviewed plan can't run as it is
    │   ├── StalePlanError                 UIDVALIDITY changed since planning
    │   └── NeedsConfirmation              too many deletions without --yes
    ├── LockHeld                   exit 5  another run holds the mailbox's lock
    └── Interrupted                exit 130 (SIGINT) / 143 (SIGTERM); the journal makes a re-run safe
    Signalled (a KeyboardInterrupt)        what the signal handler raises; shown as Interrupted

A cron wrapper retries on 3 and 5 and alerts on 2 and 6.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

REDACTED = "****"
# Every secret this process holds (passwords, tokens), in every form a server might echo
# it back.  Process-wide on purpose: whatever text reaches the user or the journal,
# from whichever layer, goes through ``redact`` first.
_secrets: set[str] = set()


def register_secret(secret: str | bytes | None) -> None:
    """Never show ``secret``: as written, as an IMAP quoted string, or either inside a ``b'...'`` repr."""
    if not secret:
        return
    text = secret.decode("utf-8", "replace") if isinstance(secret, bytes) else secret
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    forms = {text, quoted}
    _secrets.update(form for form in forms | {repr(form.encode("utf-8"))[2:-1] for form in forms} if form)


def forget_secrets() -> None:
    """Start a new command: the secrets of an earlier one in this process are not its own."""
    _secrets.clear()


# A secret this short is also a common word or letter: it is redacted only standing alone,
# so that "y" as a password doesn't turn every "y" of the output into stars.
_SHORT = 4


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``****``, longest forms first.

    >>> register_secret('pa"ss')
    >>> redact('a001 NO LOGIN me "pa\\"ss" failed')
    'a001 NO LOGIN me "****" failed'
    >>> register_secret("ab")
    >>> redact('LOGIN me ab: abbey road')
    'LOGIN me ****: abbey road'
    """
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret not in text:
            continue
        if len(secret) >= _SHORT:
            text = text.replace(secret, REDACTED)
        else:
            text = re.sub(rf"(?<![\w]){re.escape(secret)}(?![\w])", REDACTED, text)
    return text


@dataclass(frozen=True, slots=True, order=True)
class Loc:
    """A place in a source file; line and column are 1-based (0 when unknown)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        if self.line <= 0:
            return self.file
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding about a rule file: ``file:line:col: error: message``."""

    loc: Loc
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        return f"{self.loc}: {self.severity}: {self.message}"


class MailrulesError(Exception):
    exit_code = 1


class RuleFileError(MailrulesError):
    """Every problem found in a file, reported at once."""

    exit_code = 2

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.loc, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))


class UsageError(MailrulesError):
    exit_code = 2


class BackendError(MailrulesError):
    """A mailbox or mail server failed; ``folder`` and ``command`` say where, when known."""

    exit_code = 3

    def __init__(self, message: str, *, folder: str | None = None, command: str | None = None):
        self.folder = folder
        self.command = command
        where = " ".join(part for part in (f"folder {folder!r}" if folder else "", command or "") if part)
        super().__init__(f"{message} ({where})" if where else message)


class PermanentError(BackendError):
    """A failure that repeats on every run until the account, rules or machine are fixed."""

    exit_code = 6


class AuthenticationFailed(PermanentError):
    pass


class ConfigurationError(PermanentError):
    pass


class CapabilityError(PermanentError):
    pass


class FolderRefused(PermanentError):
    pass


class StateStoreError(PermanentError):
    pass


class ConnectionLost(BackendError):
    """The connection dropped; the operation may or may not have reached the server."""


class MissingFolder(BackendError):
    """A COPY/MOVE/APPEND destination does not exist (the server said [TRYCREATE])."""


class SendRefused(BackendError):
    """The SMTP server will never take this reply or redirect (its address, not the server, is the
    problem): it is skipped and reported, and its message is not held back for it."""


class MessagesVanished(BackendError):
    """A COPY/MOVE named messages another client expunged meanwhile ([EXPUNGEISSUED], RFC 9051)."""


class PlanRefused(MailrulesError):
    exit_code = 4


class StalePlanError(PlanRefused):
    pass


class NeedsConfirmation(PlanRefused):
    pass


class LockHeld(MailrulesError):
    exit_code = 5


class Signalled(KeyboardInterrupt):
    """Raised by the SIGINT/SIGTERM handler.  A KeyboardInterrupt, not an Exception, so that
    no ``except Exception`` on the way out mistakes it for a failure to work around."""

    def __init__(self, signal_number: int):
        self.signal_number = signal_number
        super().__init__(signal_number)


class Interrupted(MailrulesError):
    """SIGINT or SIGTERM ended the run; its exit code is 128 + the signal number."""

    exit_code = 130

    def __init__(self, signal_number: int = 2):
        self.exit_code = 128 + signal_number
        super().__init__("interrupted; run again to finish (the journal makes that safe)")
