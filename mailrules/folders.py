"""Folder names and the globs rules use to choose them (IMAP LIST wildcards).

``*`` matches any characters including the hierarchy delimiter, ``%`` any characters
except it.  ``INBOX`` is case-insensitive (RFC 3501 §5.1), also as the first level of a
hierarchy (``inbox/Sub`` is ``INBOX/Sub``); every other name is case-sensitive.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass


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


RULE_DELIMITER = "/"
# RFC 6154 uses a rule may name as a folder (``move: '\\Junk'``), with the usual name of
# such a folder where the server marks none.
SPECIAL_USES = {"\\Trash": "Trash", "\\Junk": "Junk", "\\Archive": "Archive", "\\Sent": "Sent",
                "\\Drafts": "Drafts"}
WILDCARDS = frozenset("*%")


def has_wildcards(pattern: str) -> bool:
    return any(char in WILDCARDS for char in pattern)


@dataclass(frozen=True, slots=True)
class FolderNames:
    """How one server spells the folders a rule file names.

    Rule files name folders one way whatever the server: levels separated by ``/``,
    relative to the personal namespace (RFC 2342), ``INBOX`` for the inbox.  A server may
    separate levels with another character (``.`` in Cyrus's default layout) and keep
    personal folders under a prefix (``INBOX.``), so that ``Lists/python`` is
    ``INBOX.Lists.python`` there.  On such a server ``INBOX/Archive`` and ``Archive`` are
    one folder.  Folders of other namespaces (other users', shared) have no rule name.

    >>> cyrus = FolderNames(delimiter=".", prefix="INBOX.")
    >>> cyrus.to_server("Lists/python"), cyrus.to_server("INBOX"), cyrus.from_server("INBOX.Archive")
    ('INBOX.Lists.python', 'INBOX', 'Archive')
    >>> cyrus.from_server("user.bob.Sent") is None, cyrus.canonical("INBOX/Archive")
    (True, 'Archive')
    """

    delimiter: str = RULE_DELIMITER  # the server's; "" when it keeps folders flat
    prefix: str = ""  # the personal namespace's, delimiter included
    elsewhere: tuple[str, ...] = ()  # prefixes of the other namespaces

    def to_server(self, name: str) -> str:
        parts = name.split(RULE_DELIMITER)
        if parts[0].upper() == "INBOX":
            return self.delimiter.join(["INBOX", *parts[1:]])
        return self.prefix + self.delimiter.join(parts)

    def from_server(self, server_name: str) -> str | None:
        """The rule name of a server folder, or None when rule files can't name it."""
        if server_name.upper() == "INBOX":
            return "INBOX"
        rest = self._personal_part(server_name)
        if not rest:
            return None
        parts = rest.split(self.delimiter) if self.delimiter else [rest]
        if any(not part or RULE_DELIMITER in part for part in parts):
            return None  # an empty level, or a '/' inside a level, has no spelling with '/' between levels
        if self.prefix and parts[0].upper() == "INBOX":
            return None  # INBOX.INBOX would read as the inbox itself
        return normalise_folder(RULE_DELIMITER.join(parts), RULE_DELIMITER)

    def _personal_part(self, server_name: str) -> str | None:
        if self.prefix:
            head = server_name[: len(self.prefix)]
            same = head.upper() == self.prefix.upper() if self.prefix.upper().startswith("INBOX") else head == self.prefix
            return server_name[len(self.prefix):] if same else None
        if any(server_name.startswith(other) for other in self.elsewhere if other):
            return None
        return server_name

    def canonical(self, name: str) -> str:
        """The one rule name of the folder ``name`` means here (``INBOX/Archive`` -> ``Archive`` on Cyrus)."""
        if has_wildcards(name):
            return name
        return self.from_server(self.to_server(name)) or name

    def problem(self, name: str) -> str | None:
        """Why a rule's folder name (or glob) can't name a folder on this server, or None."""
        levels = name.split(RULE_DELIMITER)
        if not self.delimiter and len(levels) > 1:
            return (f"folder {name!r} has levels, but this server keeps its folders flat "
                    "(it has no hierarchy delimiter)")
        if self.delimiter and self.delimiter != RULE_DELIMITER and any(self.delimiter in level for level in levels):
            return (f"folder {name!r} can't exist on this server: it separates levels with {self.delimiter!r}, "
                    f"so a name can't contain {self.delimiter!r}; rule files separate levels with '/'")
        return None


def special_use_of(name: str) -> str | None:
    """The RFC 6154 attribute a rule's folder name stands for (``\\trash`` -> ``\\Trash``), or None."""
    return next((use for use in SPECIAL_USES if use.lower() == name.lower()), None)


def resolve_special_use(name: str, uses: dict[str, str]) -> str:
    r"""The folder the server gives the use ``name`` names, else the usual name of such a folder.

    >>> resolve_special_use("\\Trash", {"\\Trash": "Deleted Items"}), resolve_special_use("\\Junk", {})
    ('Deleted Items', 'Junk')
    >>> resolve_special_use("Lists/python", {"\\Trash": "Deleted Items"})
    'Lists/python'
    """
    use = special_use_of(name)
    if use is None:
        return name
    return uses.get(use, SPECIAL_USES[use])
