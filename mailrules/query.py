"""The project's own search values: the keys a rule's condition pushes to a store, as data.

The SEARCH compiler (search.py) produces them; a backend answers them (the IMAP backend
sends them as ``UID SEARCH``, the Maildir one returns every message and leaves the rest
to the local matcher).  The keys are IMAP's SEARCH keys (RFC 3501 §6.4.4), the richest
server-side filter the project targets, but written as values, so no backend has to
speak imapclient's list form to be asked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from mailrules.model import Condition


# ---------------------------------------------------------------- search keys


@dataclass(frozen=True, slots=True)
class Term:
    """One search key with its arguments, e.g. ``("SUBJECT", "invoice")`` or ``("SEEN",)``."""

    tokens: tuple[str | int | date, ...]


@dataclass(frozen=True, slots=True)
class OrKey:
    left: Key
    right: Key


@dataclass(frozen=True, slots=True)
class NotKey:
    key: Key


@dataclass(frozen=True, slots=True)
class Group:
    """A conjunction used as one operand of ``OR``/``NOT``: rendered in parentheses."""

    keys: tuple[Key, ...]


Key = Term | OrKey | NotKey | Group

ALL_KEYS: tuple[Key, ...] = ()  # an empty conjunction: every message


def any_of(keys: Sequence[Key]) -> Key:
    """``OR`` over one or more keys, nested to the right (IMAP's ``OR`` takes two)."""
    if len(keys) == 1:
        return keys[0]
    return OrKey(keys[0], any_of(keys[1:]))


def group(keys: Sequence[Key]) -> Key:
    """One key for a non-empty conjunction."""
    return keys[0] if len(keys) == 1 else Group(tuple(keys))


def key_tokens(key: Key) -> list[object]:
    """A key in imapclient's nested-list form: operands that are conjunctions become lists."""
    match key:
        case Term(tokens):
            return list(tokens)
        case OrKey(left, right):
            return ["OR", *_operand(left), *_operand(right)]
        case NotKey(inner):
            return ["NOT", *_operand(inner)]
        case Group(keys):
            return [token for inner in keys for token in key_tokens(inner)]
    raise TypeError(f"not a search key: {key!r}")


def _operand(key: Key) -> list[object]:
    return [key_tokens(key)] if isinstance(key, Group) else key_tokens(key)


def key_texts(key: Key) -> Iterable[str]:
    """Every string argument of a key (needles, header names, keywords)."""
    match key:
        case Term(tokens):
            yield from (token for token in tokens if isinstance(token, str))
        case OrKey(left, right):
            yield from key_texts(left)
            yield from key_texts(right)
        case NotKey(inner):
            yield from key_texts(inner)
        case Group(keys):
            for inner in keys:
                yield from key_texts(inner)


def is_ascii_key(key: Key) -> bool:
    return all(text.isascii() for text in key_texts(key))


# ---------------------------------------------------------------- the query


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """What the server is asked, and what is left for the local matcher.

    ``keys`` is a conjunction (empty: ``ALL``).  ``residual`` is None when ``exact``;
    otherwise the part of the condition the local check must still decide (the server's
    answer already guarantees the rest).  ``notes`` say why something was not pushed.
    """

    keys: tuple[Key, ...]
    exact: bool
    residual: Condition | None
    notes: tuple[str, ...] = ()

    @property
    def criteria(self) -> tuple[object, ...]:
        """The criteria for ``IMAPClient.search``, e.g. ``('OR', 'SUBJECT', 'x', 'FROM', 'y', 'UNSEEN')``."""
        return tuple(token for key in self.keys for token in key_tokens(key)) or ("ALL",)

    @property
    def needs_utf8(self) -> bool:
        """Some argument is non-ASCII: the search must say ``CHARSET UTF-8``."""
        return not all(is_ascii_key(key) for key in self.keys)


# Every message: what a store is asked to list all UIDs of a folder.
EVERYTHING = SearchQuery(ALL_KEYS, True, None)
