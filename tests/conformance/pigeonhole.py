"""Run Dovecot Pigeonhole's ``sievec`` and ``sieve-test`` on generated scripts, and read their verdict.

Both tools refuse to run as root unless their configuration names an unprivileged mail
user, so each :class:`Pigeonhole` keeps a private work directory owned by that user
with such a configuration.  ``sieve-test`` executes nothing: it prints the actions a
script would take, which :func:`parse_actions` turns into a :class:`SieveVerdict`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SIEVEC = "/usr/bin/sievec"
SIEVE_TEST = "/usr/bin/sieve-test"
MAIL_USER, MAIL_GROUP = "nobody", "nogroup"
MAIL_UID = MAIL_GID = 65534


def missing_reason() -> str | None:
    for tool in (SIEVEC, SIEVE_TEST):
        if not os.path.exists(tool):
            return f"{tool} not found: install Debian's dovecot-sieve (Pigeonhole)"
    return None


def require_pigeonhole() -> None:
    """Skip without Pigeonhole, except in CI, where a missing tool must fail the run."""
    reason = missing_reason()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason}. CI must install it.", pytrace=False)
    pytest.skip(reason)


@dataclass(frozen=True, slots=True)
class SieveVerdict:
    """Where ``sieve-test`` says the message ends up: folder -> IMAP flags (lower-case keys)."""

    stored: dict[str, frozenset[str]] = field(default_factory=dict)
    discarded: bool = False
    redirects: tuple[str, ...] = ()
    vacation: bool = False


class Pigeonhole:
    """A work directory and configuration under which sievec and sieve-test run as ``nobody``."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mailrules-sieve-"))
        (self.root / "mail").mkdir()
        self.conf = self.root / "sieve.conf"
        self.conf.write_text(
            f"mail_uid = {MAIL_USER}\nmail_gid = {MAIL_GROUP}\nfirst_valid_uid = 1\nfirst_valid_gid = 1\n"
            f"mail_location = maildir:{self.root / 'mail'}\nbase_dir = {self.root}\nstate_dir = {self.root}\n"
        )
        self.root.chmod(0o755)
        if os.geteuid() == 0:
            for path in (self.root, self.root / "mail"):
                os.chown(path, MAIL_UID, MAIL_GID)
        self._serial = 0

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Pigeonhole:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, name: str, data: bytes) -> Path:
        self._serial += 1
        path = self.root / f"{self._serial}-{name}"
        path.write_bytes(data)
        path.chmod(0o644)
        return path

    def compile(self, script: str) -> tuple[bool, str]:
        """Whether ``sievec`` accepts the script, and what it said."""
        source = self._write("script.sieve", script.encode())
        proc = subprocess.run(
            [SIEVEC, "-c", str(self.conf), str(source), str(source.with_suffix(".svbin"))],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        )
        return proc.returncode == 0, proc.stderr + proc.stdout

    def run(self, script: str, eml: bytes, envelope: tuple[str, str] | None = None) -> SieveVerdict:
        """What the script does with the message at delivery into INBOX, from and to ``envelope`` if given.

        Without one, sieve-test makes one up from the message's headers.
        """
        source = self._write("script.sieve", script.encode())
        message = self._write("message.eml", eml)
        envelope = ["-f", envelope[0], "-r", envelope[1]] if envelope else []
        proc = subprocess.run(
            [SIEVE_TEST, "-c", str(self.conf), *envelope, str(source), str(message)],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, cwd=self.root,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"sieve-test failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
        return parse_actions(proc.stdout)


_ITEM = re.compile(r"^ \* (.*)$")
_DETAIL = re.compile(r"^\s+\+ (.*)$")


def parse_actions(output: str) -> SieveVerdict:
    """Read the "Performed actions" and "Implicit keep" sections that ``sieve-test`` prints."""
    stored: dict[str, frozenset[str]] = {}
    discarded, vacation, redirects = False, False, []
    current: str | None = None
    for line in output.splitlines():
        if item := _ITEM.match(line):
            action = item.group(1)
            current = action.removeprefix("store message in folder: ") if action.startswith("store message") else None
            if current is not None:
                stored.setdefault(current, frozenset())
            discarded |= action == "discard"
            vacation |= action.startswith("send vacation message")
            if action.startswith("redirect message to: "):
                redirects.append(action.removeprefix("redirect message to: ").strip("<>"))
        elif (detail := _DETAIL.match(line)) and current is not None and detail.group(1).startswith("add IMAP flags: "):
            flags = detail.group(1).removeprefix("add IMAP flags: ").split()
            stored[current] = stored[current] | {flag.lower() for flag in flags}
    return SieveVerdict(stored, discarded, tuple(redirects), vacation)
