"""What the server tests execute, and the Debian package that brings each file.

One table for ``scripts/test`` (which installs what is missing) and for the fixtures
(which skip, or fail under ``CI``, naming the package).  A package's presence is not
enough: ``apt-get install cyrus-imapd`` removes ``dovecot-imapd`` but leaves
``dovecot-core``, so ``/usr/sbin/dovecot`` exists while the IMAP binary it starts is
gone.  Hence every entry is a file the tests run or load.

Cyrus IMAP can't be installed beside Dovecot with apt (both provide ``imap-server``), so
its two packages are unpacked into a private prefix (``MAILRULES_CYRUS_PREFIX``,
``/opt/mailrules-cyrus`` by default) and run from there; their shared libraries come
from ordinary packages that conflict with nothing.

Run as ``python3 -m tests.support.requirements apt|unpack [GROUP ...]``: prints the
packages to install with apt-get, or to unpack into the prefix (all of them when any
file there is missing: the prefix is replaced whole), one a line.  Standard
library only: it runs before the test dependencies are installed.
"""

from __future__ import annotations

import glob
import os
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CYRUS_PREFIX = "/opt/mailrules-cyrus"
GROUPS = ("dovecot", "cyrus", "benchmarks")


def cyrus_prefix() -> Path:
    return Path(os.environ.get("MAILRULES_CYRUS_PREFIX") or DEFAULT_CYRUS_PREFIX)


@dataclass(frozen=True, slots=True)
class Requirement:
    """A file some tests execute or load; ``*`` matches a multiarch directory."""

    pattern: str
    package: str
    group: str
    unpacked: bool = False  # lives under the Cyrus prefix rather than the system root

    def path(self) -> str:
        return str(cyrus_prefix()) + self.pattern if self.unpacked else self.pattern

    def present(self) -> bool:
        return any(os.access(found, os.R_OK) for found in glob.glob(self.path()))


REQUIREMENTS = (
    Requirement("/usr/sbin/dovecot", "dovecot-core", "dovecot"),
    Requirement("/usr/bin/doveadm", "dovecot-core", "dovecot"),
    Requirement("/usr/lib/dovecot/imap", "dovecot-imapd", "dovecot"),
    Requirement("/usr/lib/dovecot/imap-login", "dovecot-imapd", "dovecot"),
    Requirement("/usr/bin/sieve-test", "dovecot-sieve", "dovecot"),
    Requirement("/usr/bin/sievec", "dovecot-sieve", "dovecot"),
    Requirement("/usr/bin/openssl", "openssl", "dovecot"),  # the TLS Dovecot's certificate
    Requirement("/usr/lib/cyrus/bin/master", "cyrus-common", "cyrus", unpacked=True),
    Requirement("/usr/lib/cyrus/bin/ctl_cyrusdb", "cyrus-common", "cyrus", unpacked=True),
    Requirement("/usr/lib/*/libcyrus_imap.so.0", "cyrus-common", "cyrus", unpacked=True),
    Requirement("/usr/lib/cyrus/bin/imapd", "cyrus-imapd", "cyrus", unpacked=True),
    Requirement("/usr/sbin/saslpasswd2", "sasl2-bin", "cyrus"),
    Requirement("/usr/lib/*/sasl2/libsasldb.so*", "libsasl2-modules-db", "cyrus"),
    Requirement("/usr/lib/*/sasl2/libplain.so*", "libsasl2-modules", "cyrus"),
    # Libraries of the unpacked binaries that a minimal Debian lacks (the rest are there).
    Requirement("/usr/lib/*/libical.so.3", "libical3", "cyrus"),
    Requirement("/usr/lib/*/libpcreposix.so.3", "libpcre3", "cyrus"),
    Requirement("/usr/lib/*/libxapian.so.30", "libxapian30", "cyrus"),
    Requirement("/usr/lib/*/libwrap.so.0", "libwrap0", "cyrus"),
    Requirement("/usr/bin/imapfilter", "imapfilter", "benchmarks"),
)


def missing(groups: tuple[str, ...] = GROUPS, requirements: tuple[Requirement, ...] | None = None) -> list[Requirement]:
    table = REQUIREMENTS if requirements is None else requirements
    return [req for req in table if req.group in groups and not req.present()]


def packages(reqs: list[Requirement], *, unpacked: bool) -> list[str]:
    """The distinct packages behind ``reqs``, in table order."""
    return list(dict.fromkeys(req.package for req in reqs if req.unpacked == unpacked))


def missing_reason(group: str) -> str | None:
    """Why the ``group`` tests can't run here (naming files and packages), or None when they can."""
    absent = missing((group,))
    if not absent:
        return None
    files = ", ".join(req.path() for req in absent)
    apt = packages(absent, unpacked=False)
    unpack = packages(absent, unpacked=True)
    how = []
    if apt:
        how.append("install Debian's " + " ".join(apt))
    if unpack:
        how.append(f"unpack {' '.join(unpack)} into {cyrus_prefix()} (scripts/test does both)")
    return f"{files} not found: " + "; ".join(how)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("apt", "unpack") or set(argv[1:]) - set(GROUPS):
        print(f"usage: python3 -m tests.support.requirements apt|unpack [{'|'.join(GROUPS)} ...]", file=sys.stderr)
        return 2
    groups = tuple(argv[1:]) or GROUPS
    absent = missing(groups)
    if argv[0] == "unpack" and any(req.unpacked for req in absent):
        absent = [req for req in REQUIREMENTS if req.unpacked]  # the prefix is replaced whole
    for package in packages(absent, unpacked=argv[0] == "unpack"):
        print(package)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
