"""Validated rule sets and accounts, cached by the content of every file they were built from.

A cron job runs the same rules every few minutes; re-reading YAML and re-validating it
against the JSON Schema (and importing jsonschema and Jinja2 to do so) would cost more
than a run over an already-sorted mailbox.  The cache is keyed by the SHA-256 of the rule
file, its includes and its reply templates, and by the code that builds rule sets, so
any edit (or an upgrade) validates again.  It lives in the user's own state directory.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mailrules.errors import Problem
from mailrules.model import Reply, RuleSet

if TYPE_CHECKING:
    from mailrules.accounts import Accounts

FORMAT = 2
BUILDERS = ("model.py", "parse.py", "loader.py", "yamlsrc.py", "units.py", "templates.py", "reply.py", "cache.py",
            "accounts.py")


@dataclass(frozen=True, slots=True)
class CacheEntry:
    version: str
    digests: tuple[tuple[str, str], ...]  # (path, sha256) of every file the value depends on
    value: object


def load_ruleset_cached(path: str | os.PathLike[str], cache_dir: Path) -> tuple[RuleSet, list[Problem]]:
    """The rule set of ``path`` and its warnings, from the cache when no file it depends on changed."""

    def build() -> tuple[tuple[RuleSet, list[Problem]], list[str]]:
        from mailrules.loader import load_ruleset

        loaded = load_ruleset(path)
        return (loaded.ruleset, loaded.warnings), _dependencies(loaded.ruleset)

    return _cached(cache_dir, "rules", path, build)  # type: ignore[return-value]


def load_accounts_cached(path: str | os.PathLike[str] | None, cache_dir: Path) -> Accounts:
    from mailrules.accounts import default_accounts_path

    file = path if path is not None else default_accounts_path()

    def build() -> tuple[Accounts, list[str]]:
        from mailrules.accounts import load_accounts

        return load_accounts(file), [str(Path(file).resolve())]

    return _cached(cache_dir, "accounts", file, build)  # type: ignore[return-value]


def _cached(cache_dir: Path, kind: str, path: str | os.PathLike[str], build) -> object:  # type: ignore[no-untyped-def]
    entry = cache_dir / f"{kind}-{_key(path)}.pickle"
    cached = _read(entry)
    if cached is not None and _fresh(cached):
        return cached.value
    value, dependencies = build()
    # Recorded absolute: a relative name would be checked against whatever folder the next
    # run starts in, and could find another file there that happens to look unchanged.
    names = [os.path.abspath(name) for name in dependencies]
    _write(entry, CacheEntry(_version(), tuple((name, _sha256(name)) for name in names), value))
    return value


def _key(path: str | os.PathLike[str]) -> str:
    """Everything the loaded value depends on besides file contents: the file, and the name it was given by.

    A rule file named relatively carries that name (and the working directory it is
    relative to) in its rules and messages, so each spelling gets an entry of its own.
    """
    given = os.fspath(path)
    anchor = "" if os.path.isabs(given) else os.getcwd()
    identity = "\0".join((os.path.realpath(given), given, anchor))
    return hashlib.sha256(identity.encode()).hexdigest()[:24]


def _dependencies(ruleset: RuleSet) -> list[str]:
    templates = [action.template for rule in ruleset.rules for action in rule.then
                 if isinstance(action, Reply) and action.template]
    return sorted(set(ruleset.files) | set(templates))


def _sha256(name: str) -> str:
    try:
        return hashlib.sha256(Path(name).read_bytes()).hexdigest()
    except OSError:
        return ""  # gone or unreadable: never equal to a recorded digest of a real file


def _fresh(cached: CacheEntry) -> bool:
    return cached.version == _version() and all(_sha256(name) == digest and digest
                                                for name, digest in cached.digests)


def _read(entry: Path) -> CacheEntry | None:
    try:
        with entry.open("rb") as stream:
            cached = pickle.load(stream)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError):
        return None
    return cached if isinstance(cached, CacheEntry) else None


def _write(entry: Path, cached: CacheEntry) -> None:
    """Write atomically; a cache that can't be written only costs speed."""
    try:
        entry.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.NamedTemporaryFile(dir=entry.parent, delete=False, suffix=".tmp") as stream:
            pickle.dump(cached, stream, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(stream.name, entry)
    except OSError:
        return


def _version() -> str:
    """Changes with the code that builds a rule set, installed or edited in place."""
    here = Path(__file__).parent
    stamps = [str((here / name).stat().st_mtime_ns) for name in BUILDERS]
    return f"{FORMAT}:" + hashlib.sha256(":".join(stamps).encode()).hexdigest()[:16]
