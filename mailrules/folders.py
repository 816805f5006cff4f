"""Folder names and the globs rules use to choose them (IMAP LIST wildcards).

``*`` matches any characters including the hierarchy delimiter, ``%`` any characters
except it.  ``INBOX`` is case-insensitive (RFC 3501 §5.1), also as the first level of a
hierarchy (``inbox/Sub`` is ``INBOX/Sub``); every other name is case-sensitive.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable


def normalise_folder(name: str, delimiter: str | None) -> str:
    """Spell INBOX the canonical way, alone or as the first level of a hierarchy.

    >>> normalise_folder("inbox/Sub", "/"), normalise_folder("Inboxes", "/")
    ('INBOX/Sub', 'Inboxes')
    """
    head = name[:5]
    if head.upper() != "INBOX":
        return name
    rest = name[5:]
    if not rest or (delimiter and rest.startswith(delimiter)):
        return "INBOX" + rest
    return name


def same_folder(first: str, second: str, delimiter: str | None) -> bool:
    return normalise_folder(first, delimiter) == normalise_folder(second, delimiter)


@functools.lru_cache(maxsize=1024)
def _glob_regex(pattern: str, delimiter: str | None) -> re.Pattern[str]:
    any_but_delimiter = f"[^{re.escape(delimiter)}]*" if delimiter else ".*"
    parts = (".*" if char == "*" else any_but_delimiter if char == "%" else re.escape(char) for char in pattern)
    return re.compile("".join(parts), re.DOTALL)


def folder_matches(pattern: str, folder: str, delimiter: str | None = "/") -> bool:
    """Whether a rule's folder glob covers ``folder``.

    >>> folder_matches("Lists/%", "Lists/python", "/"), folder_matches("Lists/%", "Lists/a/b", "/")
    (True, False)
    >>> folder_matches("Lists/*", "Lists/a/b", "/"), folder_matches("inbox", "INBOX", "/")
    (True, True)
    """
    regex = _glob_regex(normalise_folder(pattern, delimiter), delimiter)
    return regex.fullmatch(normalise_folder(folder, delimiter)) is not None


def resolve_folders(
    patterns: Iterable[str], existing: Iterable[str], delimiter: str | None = "/"
) -> tuple[list[str], list[str]]:
    """The existing folders the patterns cover, and the patterns that cover none.

    Folders come in the order of ``patterns`` first and of ``existing`` second, each once,
    spelled as ``existing`` spells them.

    >>> resolve_folders(["Lists/*", "INBOX", "Gone"], ["INBOX", "Lists/a", "Lists/b"], "/")
    (['Lists/a', 'Lists/b', 'INBOX'], ['Gone'])
    """
    folders = list(existing)
    matched: dict[str, None] = {}
    unmatched: list[str] = []
    for pattern in patterns:
        hits = [folder for folder in folders if folder_matches(pattern, folder, delimiter)]
        if not hits:
            unmatched.append(pattern)
        matched.update(dict.fromkeys(hits))
    return list(matched), unmatched
