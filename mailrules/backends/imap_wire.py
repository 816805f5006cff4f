"""IMAP's wire forms, without a connection: quoting, SEARCH tokens, FETCH items and their
answers, LIST flags, NAMESPACE, BODYSTRUCTURE and COPYUID.

Pure functions over bytes and imapclient's parsed values, so each is tested with literals;
the session that sends and reads them is imap.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from mailrules.backends.base import CopyResult, FetchNeeds
from mailrules.errors import CapabilityError
from mailrules.folders import SPECIAL_USES, FolderNames
from mailrules.message import MessageView
from mailrules.uidset import parse_uid_set

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# RFC 3501 atom: printable ASCII except SP ( ) { % * " \ ] (and so no CTL or 8-bit).
_ATOM = re.compile(r'[\x21\x23\x24\x26\x27\x2b-\x5b\x5e-\x7a\x7c-\x7e]+')
_SEQUENCE_SET = re.compile(r"[0-9*][0-9*:,]*")


def delimiter_of(listing: Sequence[tuple[Any, Any, str]]) -> str:
    """The hierarchy delimiter from LIST lines; NIL (a flat namespace) becomes ``""``."""
    for _, delimiter, _ in listing:
        if delimiter:
            return delimiter.decode() if isinstance(delimiter, bytes) else str(delimiter)
    return ""


def names_from_namespace(spaces: Any) -> FolderNames | None:
    """Folder naming from a NAMESPACE answer: the first personal namespace, and the
    prefixes of the others (whose folders rule files don't name).

    >>> from collections import namedtuple
    >>> Namespace = namedtuple("Namespace", "personal other shared")
    >>> names_from_namespace(Namespace((("INBOX.", "."),), (("user.", "."),), (("", "."),)))
    FolderNames(delimiter='.', prefix='INBOX.', elsewhere=('user.', ''))
    >>> names_from_namespace(Namespace(None, None, None)) is None
    True
    """
    if not spaces.personal:
        return None
    prefix, delimiter = spaces.personal[0]
    others = [other for group in (spaces.other, spaces.shared) if group for other, _ in group]
    return FolderNames(delimiter=_text(delimiter), prefix=_text(prefix), elsewhere=tuple(others))


def in_personal_namespace(names: FolderNames, server_name: str) -> bool:
    """Whether a listed folder lies in the personal namespace (else it belongs to another)."""
    if names.prefix:
        return server_name.upper().startswith(names.prefix.upper())
    return not any(server_name.startswith(other) for other in names.elsewhere if other)


def special_uses(flags: Sequence[bytes]) -> list[str]:
    r"""The RFC 6154 attributes among a LIST line's flags, spelled as rule files do.

    >>> special_uses([b"\\HasNoChildren", b"\\trash"])
    ['\\Trash']
    """
    spelled = {use.lower(): use for use in SPECIAL_USES}
    return [spelled[text] for flag in flags if (text := _text(flag).lower()) in spelled]


def unselectable(flags: Sequence[bytes]) -> bool:
    return any(flag.lower() in (b"\\noselect", b"\\nonexistent") for flag in flags)


def with_parents(folder: str, delimiter: str) -> list[str]:
    """``a/b/c`` -> ``['a', 'a/b', 'a/b/c']``.

    >>> with_parents("Lists/python/dev", "/")
    ['Lists', 'Lists/python', 'Lists/python/dev']
    >>> with_parents("Flat", "")
    ['Flat']
    """
    if not delimiter:
        return [folder]
    parts = folder.split(delimiter)
    return [delimiter.join(parts[: index + 1]) for index in range(len(parts))]


def quoted_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def is_8bit(token: bytes) -> bool:
    return any(byte > 127 for byte in token)


def search_tokens(criteria: Sequence[object]) -> list[bytes]:
    """IMAP SEARCH arguments for imapclient-style criteria, each string quoted as it needs.

    Nested lists become parenthesised groups; strings that aren't atoms are quoted;
    non-ASCII strings stay raw UTF-8 (sent as literals).  A group never ends with a
    literal (a space would have to follow it), so ``ALL`` pads such a group.

    >>> search_tokens(["OR", ["SUBJECT", "(urgent)"], ["FROM", "a b"], "UNSEEN"])
    [b'OR', b'(SUBJECT', b'"(urgent)")', b'(FROM', b'"a b")', b'UNSEEN']
    >>> search_tokens(["NOT", ["SUBJECT", "Grüße"], "SINCE", date(2025, 1, 31)])
    [b'NOT', b'(SUBJECT', b'Gr\\xc3\\xbc\\xc3\\x9fe', b'ALL)', b'SINCE', b'31-Jan-2025']
    """
    tokens: list[bytes] = []
    for item in criteria:
        if isinstance(item, (list, tuple)):
            tokens += _group(search_tokens(item))
        else:
            tokens.append(_search_atom(item))
    return tokens


def _group(inner: list[bytes]) -> list[bytes]:
    """Parenthesise tokens by gluing the parentheses to the outer ones (no ``( A )``)."""
    if not inner or is_8bit(inner[-1]):
        inner = inner + [b"ALL"]
    if len(inner) == 1:
        return [b"(" + inner[0] + b")"]
    return [b"(" + inner[0], *inner[1:-1], inner[-1] + b")"]


def _search_atom(item: object) -> bytes:
    if isinstance(item, bool):
        raise CapabilityError(f"search criterion {item!r} is not a string")
    if isinstance(item, int):
        return str(item).encode()
    if isinstance(item, datetime):
        item = item.date()
    if isinstance(item, date):
        return f"{item.day}-{_MONTHS[item.month - 1]}-{item.year}".encode()
    text = item.decode() if isinstance(item, bytes) else str(item)
    if any(char in text for char in "\r\n\0"):
        raise CapabilityError(f"search text {text!r} contains a line break, which IMAP SEARCH can't carry")
    if not text.isascii():
        return text.encode("utf-8")
    if _ATOM.fullmatch(text) or _SEQUENCE_SET.fullmatch(text):
        return text.encode()
    return quoted_string(text).encode()


def fetch_items(needs: FetchNeeds) -> list[str]:
    """FETCH items for ``needs``; PEEK so reading never sets ``\\Seen``.

    >>> fetch_items(FetchNeeds(headers=frozenset({"subject", "from"}), structure=True))
    ['UID', 'RFC822.SIZE', 'INTERNALDATE', 'FLAGS', 'BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)]', 'BODYSTRUCTURE']
    """
    items = ["UID", "RFC822.SIZE", "INTERNALDATE", "FLAGS"]
    if needs.body:
        items.append("BODY.PEEK[]")
    elif needs.all_headers:
        items.append("BODY.PEEK[HEADER]")
    elif needs.headers:
        items.append(f"BODY.PEEK[HEADER.FIELDS ({' '.join(sorted(name.upper() for name in needs.headers))})]")
    if needs.structure:
        items.append("BODYSTRUCTURE")
    return items


def body_section(data: dict[bytes, Any], prefix: bytes) -> bytes | None:
    for key, value in data.items():
        if key.startswith(prefix):
            return bytes(value) if value is not None else b""
    return None


def _header_block(full: bytes) -> bytes:
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = full.find(separator)
        if end >= 0:
            return full[: end + len(separator)]
    return full


def message_view(data: dict[bytes, Any], needs: FetchNeeds) -> MessageView:
    """A MessageView from one parsed FETCH response."""
    from mailrules.message import MessageView

    full = body_section(data, b"BODY[]") if needs.body else None
    header = _header_block(full) if full is not None else body_section(data, b"BODY[HEADER") or b""
    structure = data.get(b"BODYSTRUCTURE")
    flags = [flag.decode("utf-8", "replace") for flag in data.get(b"FLAGS", ())]
    return MessageView.from_parts(
        header=header,
        size=int(data[b"RFC822.SIZE"]),
        internaldate=data.get(b"INTERNALDATE"),
        # \Recent belongs to one session and can't be set or cleared: it is not the message's.
        flags=[flag for flag in flags if flag.lower() != "\\recent"],
        full=full,
        has_attachment=bodystructure_has_attachment(structure) if structure is not None else None,
    )


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _param_names(params: object) -> list[str]:
    """Lower-case names from a BODYSTRUCTURE parameter list ``(name value name value ...)``."""
    if not isinstance(params, (list, tuple)):
        return []
    return [_text(name).lower() for name in params[::2]]


def _names_file(params: object, key: str) -> bool:
    # RFC 2231 splits long or encoded values into name*0*, name*1* ... or name*.
    return any(name == key or name.startswith(key + "*") for name in _param_names(params))


def _multipart_parts(structure: Sequence[Any]) -> tuple[list[Any], int] | None:
    """(parts, index of the subtype) for a multipart BODYSTRUCTURE, None for a single part."""
    if isinstance(structure[0], list):  # imapclient's BodyData nests the parts in a list
        return structure[0], 1
    if isinstance(structure[0], tuple):
        parts = [part for part in structure if isinstance(part, (tuple, list))]
        return parts, len(parts)
    return None


def bodystructure_has_attachment(structure: Sequence[Any]) -> bool:
    """Whether a BODYSTRUCTURE has an attachment (spec §7), without descending into attached messages.

    An attachment is a part with disposition ``attachment``, or a non-text, non-multipart
    part with a file name (disposition ``filename`` or Content-Type ``name``).

    >>> bodystructure_has_attachment((b"text", b"plain", (b"charset", b"utf-8"), None, None, b"7bit", 6, 1,
    ...                               None, None, None, None))
    False
    >>> pdf = (b"application", b"pdf", (b"name", b"a.pdf"), None, None, b"base64", 100, None, None, None, None)
    >>> bodystructure_has_attachment(([(b"text", b"plain", None, None, None, b"7bit", 1, 1), pdf], b"mixed"))
    True
    """
    multipart = _multipart_parts(structure)
    if multipart is not None:
        parts, subtype_at = multipart
        disposition = structure[subtype_at + 2] if len(structure) > subtype_at + 2 else None
        return _disposition_type(disposition) == "attachment" or any(
            bodystructure_has_attachment(part) for part in parts
        )
    main, sub = _text(structure[0]).lower(), _text(structure[1]).lower()
    # Extension data follows the basic fields, which text/* and message/rfc822 extend (RFC 3501 §7.4.2).
    extension_at = {"text": 8}.get(main, 10 if (main, sub) == ("message", "rfc822") else 7)
    disposition = structure[extension_at + 1] if len(structure) > extension_at + 1 else None
    if _disposition_type(disposition) == "attachment":
        return True
    if main == "text":
        return False
    disposition_params = disposition[1] if isinstance(disposition, (list, tuple)) and len(disposition) > 1 else None
    return _names_file(disposition_params, "filename") or _names_file(structure[2], "name")


def _disposition_type(disposition: object) -> str:
    if isinstance(disposition, (list, tuple)) and disposition:
        return _text(disposition[0]).lower()
    return ""


def merge_copy_results(results: Sequence[CopyResult]) -> CopyResult:
    """One CopyResult for a transfer sent in several chunks."""
    uid_map: dict[int, int] = {}
    for result in results:
        uid_map.update(result.uid_map)
    validities = {result.dest_uidvalidity for result in results if result.dest_uidvalidity is not None}
    return CopyResult(validities.pop() if len(validities) == 1 else None, uid_map)


def parse_copyuid(codes: Sequence[bytes]) -> CopyResult:
    """The mapping from COPYUID response-code data (``b'<uidvalidity> <src set> <dst set>'``).

    >>> parse_copyuid([b"1795 4:6,9 11:14"])
    CopyResult(dest_uidvalidity=1795, uid_map={4: 11, 5: 12, 6: 13, 9: 14})
    >>> parse_copyuid([])
    CopyResult(dest_uidvalidity=None, uid_map={})
    """
    uid_map: dict[int, int] = {}
    uidvalidity: int | None = None
    for code in codes:
        fields = _text(code).split()
        if len(fields) != 3 or not fields[0].isdigit():
            continue
        sources, targets = parse_uid_set(fields[1]), parse_uid_set(fields[2])
        if len(sources) == len(targets):
            uidvalidity = int(fields[0])
            uid_map.update(zip(sources, targets))
    return CopyResult(uidvalidity, uid_map)


