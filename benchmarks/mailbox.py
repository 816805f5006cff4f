"""Putting a generated mailbox back in place before every measured run.

The generated Maildir is kept once per size; a reset hard-links its message files into
the user's Maildir (Dovecot never rewrites a message file, it renames or unlinks it) and
copies Dovecot's own files (index, cache, uidlist), which it does change in place.  The
first reset of a size builds Dovecot's index with ``doveadm index`` and keeps it, so every
tool starts from the same warm, already-indexed mailbox, as a real one would be.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

MAIL_UID = MAIL_GID = 65534
DOVECOT_FILES = ("dovecot", "subscriptions", "maildirfolder")  # name prefixes Dovecot writes in place


def is_dovecot_file(name: str) -> bool:
    return name.startswith(DOVECOT_FILES)


def clone_maildir(source: Path, target: Path) -> int:
    """Make ``target`` an exact copy of ``source``; returns the number of message files linked."""
    if target.exists():
        shutil.rmtree(target)
    linked = 0
    for directory, subdirs, files in os.walk(source):
        here = target / Path(directory).relative_to(source)
        here.mkdir(exist_ok=True)
        os.chown(here, MAIL_UID, MAIL_GID)
        for name in files:
            linked += _place(Path(directory) / name, here / name)
    return linked


def _place(source: Path, target: Path) -> int:
    if is_dovecot_file(source.name):
        shutil.copy2(source, target)
        os.chown(target, MAIL_UID, MAIL_GID)
        return 0
    os.link(source, target)
    return 1


def snapshot_index(maildir: Path, cache: Path) -> None:
    """Keep Dovecot's files from a freshly indexed ``maildir`` in the cached copy."""
    for directory, _, files in os.walk(maildir):
        kept = cache / Path(directory).relative_to(maildir)
        for name in files:
            if is_dovecot_file(name) and kept.is_dir():
                shutil.copy2(Path(directory) / name, kept / name)


def build_index(conf: Path, username: str) -> None:
    """Have Dovecot index every folder of the user (not timed: a real mailbox is indexed already)."""
    subprocess.run(["doveadm", "-c", str(conf), "index", "-u", username, "*"], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=3600)
