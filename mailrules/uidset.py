"""IMAP UID sets (RFC 3501 §9 ``sequence-set``) as compact text, and back.

Commands that name many messages must stay well under the server's line limit
(Dovecot: 64 KB, some servers 8 KB), so long sets are split into several chunks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

DEFAULT_MAX_CHARS = 8000


def _runs(uids: Iterable[int]) -> Iterator[tuple[int, int]]:
    """Yield (first, last) of each run of consecutive UIDs, ascending, duplicates dropped."""
    ordered = sorted(set(uids))
    if not ordered:
        return
    first = last = ordered[0]
    for uid in ordered[1:]:
        if uid != last + 1:
            yield first, last
            first = uid
        last = uid
    yield first, last


def _run_text(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}:{last}"


def uid_set(uids: Iterable[int]) -> str:
    """One compact UID set for ``uids`` (any order, duplicates allowed), however long.

    >>> uid_set([5, 1, 2, 3, 3, 9, 10])
    '1:3,5,9:10'
    >>> uid_set([])
    ''
    """
    return ",".join(_run_text(first, last) for first, last in _runs(uids))


def uid_ranges(uids: Iterable[int], *, max_chars: int = DEFAULT_MAX_CHARS) -> list[str]:
    """Compact UID sets covering ``uids``, each at most ``max_chars`` characters long.

    >>> uid_ranges([1, 2, 3, 4, 500, 502])
    ['1:4,500,502']
    >>> uid_ranges(range(1, 20, 2), max_chars=8)
    ['1,3,5,7', '9,11,13', '15,17,19']
    >>> uid_ranges([])
    []
    """
    chunks: list[str] = []
    current = ""
    for first, last in _runs(uids):
        text = _run_text(first, last)
        if len(text) > max_chars:
            raise ValueError(f"UID range {text} is longer than the {max_chars}-character budget")
        if current and len(current) + 1 + len(text) > max_chars:
            chunks.append(current)
            current = ""
        current = f"{current},{text}" if current else text
    if current:
        chunks.append(current)
    return chunks


def parse_uid_set(text: str) -> list[int]:
    """The UIDs a set names, in the order it names them (COPYUID pairs sets by position).

    A range ``a:b`` names a..b ascending whichever way it is written (RFC 3501 §9).
    ``*`` has no value outside a mailbox, so it is refused.

    >>> parse_uid_set("4:6,2,10:9")
    [4, 5, 6, 2, 9, 10]
    """
    uids: list[int] = []
    for part in text.split(","):
        first, _, last = part.strip().partition(":")
        if not first.isdigit() or (last and not last.isdigit()):
            raise ValueError(f"not a UID set: {text!r}")
        low, high = sorted((int(first), int(last or first)))
        uids.extend(range(low, high + 1))
    return uids


def batched(uids: Iterable[int], size: int) -> Iterator[list[int]]:
    """Sorted, de-duplicated UIDs in lists of at most ``size``.

    >>> list(batched([7, 1, 3, 3, 5], 2))
    [[1, 3], [5, 7]]
    """
    ordered = sorted(set(uids))
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]
