"""One message as the rules see it, whatever store it came from.

A ``MessageView`` is built either from a whole message (an ``.eml`` file, a Maildir
file, an IMAP ``BODY.PEEK[]``) or from the parts the IMAP planner fetched (a header
block, RFC822.SIZE, INTERNALDATE, FLAGS).  The planner builds tens of thousands of
views per run, so the header block is split by hand and every decoding step (RFC 2047
words, addresses, dates, the MIME body) happens lazily, on first use, and is cached.

Reading never raises on malformed input: what could not be read is read as far as
possible and described in ``warnings``.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email
import email.charset
import email.errors
import email.parser
import email.policy
import functools
import quopri
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from email.message import Message
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser

from mailrules.model import canonical_flag, flag_key


class NotFetched(LookupError):
    """A caller asked for data the view was not built with (the body of a header-only fetch)."""


@dataclass(frozen=True, slots=True)
class Address:
    """One mailbox of an address header; ``address`` is ``localpart@domain``, or the local part alone."""

    display_name: str
    localpart: str
    domain: str
    address: str

    @property
    def valid(self) -> bool:
        """An addr-spec needs both parts; ``stephan@`` or ``@example.org`` have no parts to test (RFC 5228 §2.7.4)."""
        return bool(self.localpart) and bool(self.domain)


# ---------------------------------------------------------------- the header block

_HEADER_END = re.compile(rb"\n\r?\n")


@dataclass(slots=True)
class _Parsed:
    """What one message's views share: the raw fields and every lazily decoded form of them.

    Views that differ only in flags (``with_flags``) share one instance, so nothing is
    decoded twice.
    """

    fields: list[tuple[str, str]]
    by_name: dict[str, list[str]]
    full: bytes | None
    attachment_hint: bool | None
    warnings: list[str]
    decoded: dict[str, list[str]] = field(default_factory=dict)
    addresses: dict[str, list[Address]] = field(default_factory=dict)
    mime: MimeSummary | None = None
    sent_date: tuple[datetime | None] | None = None  # None until read; (None,) when there is no usable Date


def split_header(raw: bytes) -> tuple[bytes, bytes]:
    """Split a whole message at the first empty line into (header block, body).

    >>> split_header(b"Subject: hi\\r\\n\\r\\nbody\\r\\n")
    (b'Subject: hi\\r\\n', b'body\\r\\n')
    """
    if raw.startswith((b"\n", b"\r\n")):
        return b"", raw[raw.index(b"\n") + 1 :]
    end = _HEADER_END.search(raw)
    if end is None:
        return raw, b""
    return raw[: end.start() + 1], raw[end.end() :]


def _decode_header_text(block: bytes, warnings: list[str]) -> str:
    """Bytes to text: UTF-8 (RFC 6532), else Latin-1 for the lines of raw 8-bit legacy text."""
    try:
        return block.decode("utf-8")
    except UnicodeDecodeError:
        pass
    lines = []
    for raw_line in block.split(b"\n"):
        try:
            lines.append(raw_line.decode("utf-8"))
        except UnicodeDecodeError:
            lines.append(raw_line.decode("latin-1"))
            name = raw_line.partition(b":")[0][:40].decode("ascii", "replace")
            _warn(warnings, f"header {name!r} has raw 8-bit bytes that are not UTF-8; read as Latin-1")
    return "\n".join(lines)


def parse_header_block(block: bytes, warnings: list[str]) -> list[tuple[str, str]]:
    """The fields of a header block as (name as written, unfolded raw value), in order.

    Unfolding removes each line break before a continuation line (RFC 5322 §2.2.3);
    leading and trailing white space of the value is not part of it.

    >>> parse_header_block(b"Subject: a\\r\\n\\tb\\r\\nTo: x@y\\r\\n", [])
    [('Subject', 'a\\tb'), ('To', 'x@y')]
    """
    text = _decode_header_text(block, warnings).replace("\r\n", "\n")
    if text.startswith("\n"):
        return []
    end = text.find("\n\n")
    unfolded = (text[: end + 1] if end >= 0 else text).replace("\n ", " ").replace("\n\t", "\t")
    fields: list[tuple[str, str]] = []
    for line in unfolded.split("\n"):
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")  # obsolete syntax allows white space before the colon
        # RFC 5322 ftext: printable US-ASCII except space (and colon, which partition took)
        if colon and name and name.isascii() and name.isprintable() and " " not in name:
            fields.append((name, value.strip(" \t\r")))
        elif line.strip(" \t\r") and not (not fields and line.startswith("From ")):  # an mbox separator
            _warn(warnings, f"header line is not a header field; ignored: {line[:60]!r}")
    return fields


def _index_fields(fields: list[tuple[str, str]]) -> dict[str, list[str]]:
    by_name: dict[str, list[str]] = {}
    for name, value in fields:
        key = name.lower()
        if key in by_name:
            by_name[key].append(value)
        else:
            by_name[key] = [value]
    return by_name


def _warn(warnings: list[str], text: str) -> None:
    if text not in warnings:
        warnings.append(text)


# ---------------------------------------------------------------- RFC 2047 encoded words

_ENCODED_WORD = re.compile(r"=\?([^?\s*]+)(?:\*[^?\s]*)?\?([QqBb])\?([^?]*)\?=")
_Q_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")


@functools.lru_cache(maxsize=256)
def _codec_name(charset: str) -> str | None:
    name = charset.lower()
    name = email.charset.ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _word_bytes(encoding: str, text: str) -> bytes | None:
    """The octets of one encoded word's text, or None when they are not valid Q or B encoding."""
    try:
        data = text.encode("ascii")
    except UnicodeEncodeError:
        return None
    if encoding in "Bb":
        data = re.sub(rb"\s+", b"", data)
        try:
            return base64.b64decode(data + b"=" * (-len(data) % 4), validate=True)
        except binascii.Error:
            return None
    return _Q_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), data.replace(b"_", b" "))


def decode_words(value: str) -> str | None:
    """Decode the RFC 2047 encoded words of a header value, keeping all other text as written.

    White space between two adjacent encoded words is dropped (RFC 2047 §6.2) and adjacent
    words in one charset are decoded together, so a character split across words survives.
    Returns None when some word cannot be decoded (unknown charset, bad octets): the caller
    then compares the raw form, as the spec requires.

    >>> decode_words("Re: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= =?ISO-8859-1?B?YXVz?= (Wien)")
    'Re: Grüßeaus (Wien)'
    >>> decode_words("=?x-unknown?Q?abc?=") is None
    True
    """
    if "=?" not in value:
        return value
    out: list[str] = []
    pending = bytearray()
    pending_codec: str | None = None
    position = 0
    for word in _ENCODED_WORD.finditer(value):
        gap = value[position : word.start()]
        if gap and not (position and gap.isspace()):  # position > 0: the text before is an encoded word
            if not _flush(pending, pending_codec, out):
                return None
            out.append(gap)
        codec = _codec_name(word.group(1))
        data = _word_bytes(word.group(2), word.group(3))
        if codec is None or data is None:
            return None
        if codec != pending_codec and not _flush(pending, pending_codec, out):
            return None
        pending_codec = codec
        pending += data
        position = word.end()
    if not _flush(pending, pending_codec, out):
        return None
    out.append(value[position:])
    return "".join(out)


def _flush(pending: bytearray, codec: str | None, out: list[str]) -> bool:
    if not pending:
        return True
    try:
        out.append(pending.decode(codec or "ascii"))
    except UnicodeDecodeError:
        return False
    pending.clear()
    return True


# ---------------------------------------------------------------- addresses

_SPECIALS = ',;:@.<>()[]"\\'
_ATOM = re.compile(r'[^\s,;:@.<>()\[\]"\\]+')

Token = tuple[str, str]  # (kind, text); kinds: word, quoted, literal, angle, special, space


def _scan_delimited(text: str, start: int, close: str) -> tuple[str, int]:
    """Text from ``start`` (just after an opening quote or '[') up to ``close``, honouring backslash escapes."""
    out = []
    i = start
    while i < len(text) and text[i] != close:
        if text[i] == "\\" and i + 1 < len(text):
            i += 1
        out.append(text[i])
        i += 1
    return "".join(out), i + 1


def _skip_comment(text: str, start: int) -> int:
    """Index just after the comment opened at ``start - 1``; comments nest (RFC 5322 §3.2.2)."""
    depth = 1
    i = start
    while i < len(text) and depth:
        if text[i] == "\\":
            i += 1
        elif text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
        i += 1
    return i


def _skip_angle(text: str, start: int) -> tuple[str, int]:
    i = start
    while i < len(text) and text[i] != ">":
        i = _scan_delimited(text, i + 1, '"')[1] if text[i] == '"' else i + 1
    return text[start:i], i + 1


def tokenize_addresses(text: str) -> list[Token]:
    """Lex an address header; comments become plain spaces since a comment is never a display name."""
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char.isspace() or char == "(":
            i = _skip_comment(text, i + 1) if char == "(" else i + 1
            if not tokens or tokens[-1][0] != "space":
                tokens.append(("space", " "))
        elif char == '"':
            quoted, i = _scan_delimited(text, i + 1, '"')
            tokens.append(("quoted", quoted))
        elif char == "[":
            literal, i = _scan_delimited(text, i + 1, "]")
            tokens.append(("literal", f"[{literal}]"))
        elif char == "<":
            inner, i = _skip_angle(text, i + 1)
            tokens.append(("angle", inner))
        elif char in _SPECIALS:
            tokens.append(("special", char))
            i += 1
        else:
            atom = _ATOM.match(text, i)
            end = atom.end() if atom else i + 1
            tokens.append(("word", text[i:end]))
            i = end
    return tokens


def _strip_spaces(tokens: list[Token]) -> list[Token]:
    start, end = 0, len(tokens)
    while start < end and tokens[start][0] == "space":
        start += 1
    while end > start and tokens[end - 1][0] == "space":
        end -= 1
    return tokens[start:end]


def _addr_spec(tokens: list[Token]) -> str | None:
    """``local@domain`` from the tokens of an addr-spec, or None when they are a phrase, not an address."""
    parts: list[str] = []
    previous = ""
    for kind, text in tokens:
        if kind == "space":
            previous = "space" if previous else ""
            continue
        if kind in ("word", "quoted", "literal") and previous == "space" and parts and parts[-1] not in ".@":
            return None  # two words separated by a space: a display name without an address
        if kind == "angle" or (kind == "special" and text not in ".@"):
            return None
        parts.append(text)
        previous = kind
    return "".join(parts) or None


def _display_name(phrase: str) -> str:
    """Encoded words are decoded even inside quotes: common practice, though RFC 2047 forbids it."""
    decoded = decode_words(phrase)
    return phrase if decoded is None else decoded


def _make_address(display_name: str, spec: str) -> Address:
    localpart, at, domain = spec.rpartition("@")
    if not at:
        localpart, domain = spec, ""
    return Address(display_name, localpart, domain, f"{localpart}@{domain}" if at else localpart)


def _mailbox(tokens: list[Token]) -> Address | None:
    tokens = _strip_spaces(tokens)
    angles = [index for index, (kind, _) in enumerate(tokens) if kind == "angle"]
    if not angles:
        spec = _addr_spec(tokens)
        return _make_address("", spec) if spec else None
    spec = _addr_spec(_strip_spaces(_without_route(tokenize_addresses(tokens[angles[-1]][1]))))
    if not spec:
        return None
    phrase = "".join(text for _, text in _strip_spaces(tokens[: angles[-1]]))
    return _make_address(_display_name(phrase), spec)


def _without_route(tokens: list[Token]) -> list[Token]:
    """Drop an obsolete source route: ``<@relay1,@relay2:user@example.org>``."""
    colons = [index for index, token in enumerate(tokens) if token == ("special", ":")]
    return tokens[colons[-1] + 1 :] if colons else tokens


def parse_addresses(value: str) -> list[Address]:
    """The mailboxes of an address header value; group names and empty groups yield none.

    >>> [a.address for a in parse_addresses('team: a@x.org, "Doe, J" <j@y.org>;, undisclosed-recipients:;')]
    ['a@x.org', 'j@y.org']
    >>> parse_addresses("MAILER-DAEMON@x.org (Mail Delivery System)")[0].display_name
    ''
    """
    simple = _simple_addresses(value)
    return simple if simple is not None else parse_address_tokens(value)


def parse_address_tokens(value: str) -> list[Address]:
    """The general RFC 5322 reading of an address list: groups, quoting, comments, routes."""
    result: list[Address] = []
    current: list[Token] = []
    for token in tokenize_addresses(value):
        if token == ("special", ",") or token == ("special", ";"):
            result.extend(filter(None, [_mailbox(current)]))
            current = []
        elif token == ("special", ":"):
            current = []  # what came before the colon names a group, it is no address
        else:
            current.append(token)
    result.extend(filter(None, [_mailbox(current)]))
    return result


# The planner parses From/To of every candidate message: these regexes read the common
# shapes (``a@b``, ``Name <a@b>``, ``"Name" <a@b>``) exactly as the tokenizer would, and
# everything else goes to the tokenizer.
_NOT_SIMPLE = re.compile(r'["()\\:;\[\]]')
_SIMPLE_MAILBOX = re.compile(r"\s*(?:([^<>@]*?)\s*<([^<>\s@]+@[^<>\s@]+)>|([^<>\s@]+@[^<>\s@]+))\s*")
_QUOTED_MAILBOX = re.compile(r'\s*"((?:[^"\\]|\\.)*)"\s*<([^<>\s@"()\\:;,\[\]]+@[^<>\s@"()\\:;,\[\]]+)>\s*')


def _simple_addresses(value: str) -> list[Address] | None:
    quoted = _QUOTED_MAILBOX.fullmatch(value)
    if quoted:
        name = re.sub(r"\\(.)", r"\1", quoted.group(1))
        return [_make_address(_display_name(name), quoted.group(2))]
    if _NOT_SIMPLE.search(value):
        return None
    result = []
    for part in value.split(","):
        if not part or part.isspace():
            continue
        mailbox = _SIMPLE_MAILBOX.fullmatch(part)
        if mailbox is None:
            return None
        if mailbox.group(3):
            result.append(_make_address("", mailbox.group(3)))
        else:
            name = " ".join(mailbox.group(1).split())  # as the tokenizer does: white space runs become one space
            result.append(_make_address(_display_name(name), mailbox.group(2)))
    return result


# ---------------------------------------------------------------- dates


def parse_date(value: str) -> datetime | None:
    """An RFC 5322 date as an aware datetime; ``-0000`` and missing zones are read as UTC."""
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (ValueError, TypeError, IndexError, OverflowError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _aware(moment: datetime | None) -> datetime | None:
    """IMAP dates carry a zone; a naive one can only be UTC, reading it as local time would shift days."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=timezone.utc)


def arrival_from_headers(by_name: dict[str, list[str]]) -> datetime | None:
    """The date of the topmost ``Received:`` header that has one, else the ``Date:`` header."""
    for received in by_name.get("received", []):
        _, semicolon, when = received.rpartition(";")
        moment = parse_date(when) if semicolon else None
        if moment is not None:
            return moment
    dates = by_name.get("date", [])
    return parse_date(dates[0]) if dates else None


def crlf_size(raw: bytes) -> int:
    """RFC822.SIZE of a message read from a file: each bare LF counts as CRLF, as a server stores it.

    >>> crlf_size(b"a\\nb\\r\\n")
    6
    """
    return len(raw) + raw.count(b"\n") - raw.count(b"\r\n")


# ---------------------------------------------------------------- MIME body


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    """One attachment part: its file name (decoded, "" without one), type and decoded size in bytes."""

    filename: str
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class MimeSummary:
    """What the rules need from a message's MIME structure."""

    body: str
    has_attachment: bool
    attachments: tuple[AttachmentInfo, ...] = ()
    part_headers: tuple[tuple[tuple[str, str], ...], ...] = ()  # each part's (name, decoded value), root first


_MAX_PARTS = 10_000


def _parse_mime(raw: bytes, warnings: list[str]) -> Message | None:
    try:
        root = email.message_from_bytes(raw, policy=email.policy.compat32)
        if _lost_a_start_boundary(root):
            unshared = unshare_boundaries(raw)
            if unshared is not None:
                _warn(warnings, "malformed MIME: a nested multipart reuses its parent's boundary")
                return email.message_from_bytes(unshared, policy=email.policy.compat32)
        return root
    except Exception as error:  # the parser is lenient, but deep nesting ends in RecursionError
        reason = f"{type(error).__name__}: {error}"
        _warn(warnings, f"the MIME structure could not be read ({reason}); body read as plain text")
        return None


def _lost_a_start_boundary(root: Message) -> bool:
    return any(
        isinstance(defect, email.errors.StartBoundaryNotFoundDefect)
        for part in _parts(root, []) for defect in getattr(part, "defects", ())
    )


_BOUNDARY_PARAM = re.compile(rb'(boundary[ \t]*=[ \t]*)("[^"]*"|[^;\s]+)', re.IGNORECASE)


def _multipart_boundary(block: bytes) -> bytes | None:
    """The boundary a header block declares for a multipart, or None."""
    part = email.message_from_bytes(block, policy=email.policy.compat32)
    boundary = part.get_boundary() if part.get_content_maintype() == "multipart" else None
    return boundary.encode("utf-8", "surrogateescape") if boundary else None


def _delimiter(line: bytes, open_boundaries: list[tuple[bytes, bytes]]) -> tuple[int, bool] | None:
    """(index into the open boundaries, whether it closes) for a delimiter line, innermost first."""
    text = line.rstrip(b"\r\n").rstrip(b" \t")
    for depth in range(len(open_boundaries) - 1, -1, -1):
        dashed = b"--" + open_boundaries[depth][0]
        if text == dashed or text == dashed + b"--":
            return depth, text != dashed
    return None


def unshare_boundaries(raw: bytes) -> bytes | None:
    """The message with every nested multipart that reuses an open boundary given one of its own.

    Pigeonhole (like most readers) gives a delimiter line to the innermost multipart it
    fits, so an inner multipart with its parent's boundary ends at its own close line and
    the parent goes on after it; Python's parser ends the inner part at once and loses the
    rest.  Renaming the inner boundary makes both read the same tree.  None when no
    boundary is reused.
    """
    out: list[bytes] = []
    open_boundaries: list[tuple[bytes, bytes]] = []  # (as written, as rewritten), innermost last
    header: list[bytes] = []
    renamed, in_header = 0, True
    for line in raw.splitlines(keepends=True):
        if in_header:
            header.append(line)
            if not line.strip(b"\r\n"):
                block, header, in_header = b"".join(header), [], False
                block, renamed = _open_multipart(block, open_boundaries, renamed)
                out.append(block)
            continue
        found = _delimiter(line, open_boundaries)
        if found is None:
            out.append(line)
            continue
        depth, closing = found
        written, rewritten = open_boundaries[depth]
        out.append(line.replace(b"--" + written, b"--" + rewritten, 1))
        del open_boundaries[depth if closing else depth + 1 :]
        in_header = not closing
    out.extend(header)
    return b"".join(out) if renamed else None


def _open_multipart(block: bytes, open_boundaries: list[tuple[bytes, bytes]], renamed: int) -> tuple[bytes, int]:
    boundary = _multipart_boundary(block)
    if boundary is None:
        return block, renamed
    rewritten = boundary
    if any(boundary == written for written, _ in open_boundaries):
        renamed += 1
        rewritten = boundary + b".inner" + str(renamed).encode()
        block = _BOUNDARY_PARAM.sub(lambda m: m.group(1) + b'"' + rewritten + b'"', block, count=1)
    open_boundaries.append((boundary, rewritten))
    return block, renamed


def _parts(root: Message, warnings: list[str]) -> Iterator[Message]:
    """Every part outside attached messages, depth-first and in order, without recursion."""
    stack = [root]
    seen = 0
    while stack and seen < _MAX_PARTS:
        part = stack.pop()
        seen += 1
        yield part
        payload = part.get_payload()
        if part.get_content_maintype() == "multipart" and isinstance(payload, list):
            stack.extend(reversed(payload))
    if stack:
        _warn(warnings, f"the message has more than {_MAX_PARTS} MIME parts; the rest were not read")


# RFC 2045 §6: the encodings a reader can undo; Python also undoes uuencode, Sieve does not.
_KNOWN_ENCODINGS = frozenset({"7bit", "8bit", "binary", "quoted-printable", "base64", ""})
# Text that is shown as HTML although its type is not text/*.
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})


_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")


def effective_type(part: Message) -> str:
    """The content type a reader acts on: RFC 2045 §6.4 makes an unknown encoding application/octet-stream."""
    encoding = str(part.get("content-transfer-encoding", "")).strip().lower()
    if encoding not in _KNOWN_ENCODINGS and part.get_content_maintype() != "multipart":
        return "application/octet-stream"
    content_type = part.get_content_type()
    if not all(_TOKEN.fullmatch(half) for half in content_type.split("/")):
        return "text/plain"  # RFC 2045 §5.2: the default for a syntactically invalid Content-Type
    return content_type


def _is_text(content_type: str) -> bool:
    return content_type.startswith("text/") or content_type in _HTML_TYPES


def is_attachment(part: Message) -> bool:
    """§7: disposition ``attachment``, or a non-text, non-multipart part with a file name."""
    if part.get_content_disposition() == "attachment":
        return True
    content_type = effective_type(part)
    if _is_text(content_type) or content_type.startswith("multipart/"):
        return False
    return bool(part.get_filename())


def _part_text(part: Message, warnings: list[str]) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    text = _unix_lines(_decode_text(payload, part.get_content_charset(), warnings))
    return html_to_text(text, warnings) if effective_type(part) in _HTML_TYPES else text


def _unix_lines(text: str) -> str:
    """One line ending, so a MULTILINE ``$`` matches at every line end."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _decode_text(payload: bytes, charset: str | None, warnings: list[str]) -> str:
    codec = _codec_name(charset) if charset else None
    if charset and codec is None:
        _warn(warnings, f"unknown charset {charset!r}; text read as UTF-8 (or Latin-1)")
    if codec is None:  # unlabelled or unknown: UTF-8 is the likeliest, and any bytes are valid Latin-1
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError:
            return payload.decode("latin-1")
    try:
        return payload.decode(codec)
    except UnicodeDecodeError:
        _warn(warnings, f"text is not valid {charset}; undecodable bytes replaced")
        return payload.decode(codec, "replace")


def _defect_warnings(part: Message, warnings: list[str]) -> None:
    for defect in getattr(part, "defects", ()):
        words = re.sub(r"(?<!^)([A-Z])", r" \1", type(defect).__name__.removesuffix("Defect")).lower()
        _warn(warnings, f"malformed MIME: {words}")


def _summarise_part(part: Message, texts: list[str], warnings: list[str]) -> bool:
    """Add a part's text to ``texts``; return whether it is an attachment."""
    _defect_warnings(part, warnings)
    if is_attachment(part):
        return True
    content_type = effective_type(part)
    if content_type == "application/octet-stream" != part.get_content_type():
        encoding = str(part.get("content-transfer-encoding")).strip()[:40]
        _warn(warnings, f"unknown Content-Transfer-Encoding {encoding!r}: the part is read as application/octet-stream")
    elif _is_text(content_type):
        texts.append(_part_text(part, warnings))
    elif part.get_content_maintype() == "multipart" and isinstance(part.get_payload(), str):
        # a multipart without a usable boundary: its content is still the text a reader sees
        texts.append(_unix_lines(_decode_text(part.get_payload(decode=True) or b"", None, warnings)))
    return False


def _summarise_part_safely(part: Message, texts: list[str], warnings: list[str]) -> bool:
    try:
        return _summarise_part(part, texts, warnings)
    except Exception as error:  # one damaged part (e.g. a broken RFC 2231 parameter) must not hide the others
        _warn(warnings, f"a MIME part could not be read: {type(error).__name__}: {error}")
        return False


# Above this size, parts that can't hold body text are left out before parsing: the
# email parser needs about seven times a message's size while it reads it line by line.
SLIM_ABOVE = 1024 * 1024


def slim_mime(raw: bytes) -> bytes:
    """``raw`` with the content of every part that can't hold body text left empty.

    Such a part is an attachment or not text (an image, a PDF, an attached message: the
    summary doesn't descend into those); its headers stay, so it is still recognised as
    an attachment.  Everything else is kept byte for byte.  A structure this can't follow
    is returned whole, for the parser to read as it always does.
    """
    try:
        return _slim_entity(raw, 0)
    except Exception:  # a damaged structure: the full parse reads it as best it can
        return raw


def _slim_entity(entity: bytes, depth: int) -> bytes:
    header, body = split_header(entity)
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(header)
    maintype = headers.get_content_maintype().encode()
    content_type = effective_type(headers)
    opaque = not (_is_text(content_type) or content_type.startswith("multipart/"))
    if headers.get_content_disposition() == "attachment" or opaque:
        return _without_content(entity[: len(entity) - len(body)], body, headers)
    boundary = headers.get_boundary()
    if maintype != b"multipart" or not boundary or depth > 50:
        return entity
    return entity[: len(entity) - len(body)] + _slim_parts(body, boundary.encode("latin-1"), depth)


# The decoded size of content left out, so `attachment: {larger: ...}` still sees it.
OMITTED_SIZE = "X-Mailrules-Omitted-Size"


def _without_content(header: bytes, body: bytes, headers: Message) -> bytes:
    fields = header.rstrip(b"\r\n")
    if not body or not fields or headers.get_content_maintype() == "message":  # no decoded payload to measure
        return header
    newline = b"\r\n" if header.endswith(b"\r\n") else b"\n"
    return fields + newline + f"{OMITTED_SIZE}: {_decoded_size(body, headers)}".encode() + newline + newline


def _decoded_size(body: bytes, headers: Message) -> int:
    encoding = str(headers.get("content-transfer-encoding", "")).strip().lower()
    if encoding == "base64":
        digits = len(body) - sum(body.count(c) for c in (b"\n", b"\r", b" ", b"\t"))
        return max(0, digits * 3 // 4 - len(body.rstrip()) + len(body.rstrip().rstrip(b"=")))
    if encoding == "quoted-printable":
        return len(quopri.decodestring(body))
    return len(body)


def _slim_parts(body: bytes, boundary: bytes, depth: int) -> bytes:
    delimiters = list(re.finditer(rb"^--" + re.escape(boundary) + rb"(--)?[ \t]*\r?$", body, re.MULTILINE))
    out: list[bytes] = []
    kept_to = 0
    for opening, closing in zip(delimiters, delimiters[1:]):
        if opening.group(1):  # the close delimiter: the epilogue follows
            break
        start = opening.end() + 1  # past the delimiter line's newline
        end = closing.start()
        end -= 2 if body[end - 2 : end] == b"\r\n" else 1  # that newline belongs to the next delimiter
        if start > end:
            continue
        out += [body[kept_to:start], _slim_entity(body[start:end], depth + 1)]
        kept_to = end
    out.append(body[kept_to:])
    return b"".join(out)


def _attachment_info(part: Message) -> AttachmentInfo:
    filename = part.get_filename() or ""
    decoded = decode_words(filename) if "=?" in filename else filename
    omitted = part.get(OMITTED_SIZE)
    payload = part.get_payload(decode=True) if omitted is None else None
    size = int(omitted) if omitted is not None and str(omitted).isdigit() else len(payload) if isinstance(payload, bytes) else 0
    return AttachmentInfo(decoded if decoded is not None else filename, effective_type(part), size)


_FOLD = re.compile(r"\r?\n(?=[ \t])")


def _part_header_items(part: Message) -> tuple[tuple[str, str], ...]:
    items = []
    for name, value in part.items():
        if name == OMITTED_SIZE:
            continue
        unfolded = _FOLD.sub("", str(value)).strip()
        decoded = decode_words(unfolded)
        items.append((name, unfolded if decoded is None else decoded))
    return tuple(items)


def summarise_mime(raw: bytes, warnings: list[str]) -> MimeSummary:
    """The body text, attachments and part headers of a whole message, read as far as it can be."""
    root = _parse_mime(slim_mime(raw) if len(raw) > SLIM_ABOVE else raw, warnings)
    if root is None:  # read it as a reader without MIME support would: the body as plain text
        return MimeSummary(_unix_lines(_decode_text(split_header(raw)[1], None, warnings)), False)
    texts: list[str] = []
    attachments: list[AttachmentInfo] = []
    headers: list[tuple[tuple[str, str], ...]] = []
    try:
        for part in _parts(root, warnings):
            if _summarise_part_safely(part, texts, warnings):
                attachments.append(_attachment_info(part))
            headers.append(_part_header_items(part))
    except Exception as error:  # keep what was read before the damage
        _warn(warnings, f"the MIME structure could not be read completely: {type(error).__name__}: {error}")
    body = "\n".join(text for text in texts if text)
    return MimeSummary(body, bool(attachments), tuple(attachments), tuple(headers))


# ---------------------------------------------------------------- HTML to visible text

_INVISIBLE = frozenset({"script", "style", "head", "title", "template"})
_BLOCK = frozenset(
    "address article aside blockquote br center dd div dl dt fieldset figcaption figure footer form "
    "h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section table tbody thead tfoot tr ul".split()
)
_HTML_SPACE = re.compile(r"[ \t\n\r\f\xa0]+")


class _VisibleText(HTMLParser):
    """Collects what a reader sees: text outside invisible elements, blocks on their own lines."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.hidden: list[str] = []
        self.pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self.hidden.clear()  # </head> is optional: the body starts where <body> does
        elif tag in _INVISIBLE:
            self.hidden.append(tag)
        elif tag in ("td", "th"):
            self._space()
        elif tag in _BLOCK:
            self._line_break()
            self.pre += tag == "pre"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _INVISIBLE:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _INVISIBLE:
            if tag in self.hidden:
                del self.hidden[len(self.hidden) - 1 - self.hidden[::-1].index(tag) :]
        elif tag in _BLOCK and tag != "br":
            self.pre = max(0, self.pre - (tag == "pre"))
            self._line_break()

    def handle_data(self, data: str) -> None:
        if self.hidden:
            return
        if self.pre:
            self.chunks.append(data.replace("\xa0", " "))
            return
        text = _HTML_SPACE.sub(" ", data)
        if text.startswith(" ") and self._at_space():
            text = text[1:]  # white space collapses across tags too: "of <img> this" shows one space
        self.chunks.append(text)

    def _at_space(self) -> bool:
        return not self.chunks or self.chunks[-1].endswith((" ", "\n"))

    def _space(self) -> None:
        if not self._at_space():
            self.chunks.append(" ")

    def _line_break(self) -> None:
        if self.chunks and not self.pre:
            self.chunks[-1] = self.chunks[-1].rstrip(" ")
        self.chunks.append("\n")


def _tidy_lines(text: str) -> str:
    """At most one empty line in a row, none at the ends."""
    tidy: list[str] = []
    for line in text.split("\n"):
        if line.strip() or (tidy and tidy[-1]):
            tidy.append(line if line.strip() else "")
    return "\n".join(tidy).strip("\n")


def html_to_text(html: str, warnings: list[str]) -> str:
    """The visible text of an HTML document: tags removed, entities decoded, blocks as lines.

    >>> html_to_text("<head><title>t</title></head><p>Caf&eacute;<br>au&nbsp;lait</p><script>x()</script>", [])
    'Café\\nau lait'
    """
    parser = _VisibleText()
    try:
        parser.feed(html)
        parser.close()
    except Exception as error:  # html.parser is lenient, yet some markup still trips assertions inside it
        _warn(warnings, f"HTML could not be read completely: {error}")
    return _tidy_lines("".join(parser.chunks))


# ---------------------------------------------------------------- the view


def _canonical_flags(flags: Iterable[str]) -> frozenset[str]:
    """Canonical spellings, one per flag: ``$Label`` and ``$label`` are one IMAP keyword."""
    by_key: dict[str, str] = {}
    for flag in flags:
        by_key.setdefault(flag_key(flag), canonical_flag(flag))
    return frozenset(by_key.values())


@dataclass(frozen=True, slots=True, eq=False)
class MessageView:
    """A message's headers, flags, size and dates, plus its body when the whole message is known.

    Build it with ``from_bytes`` or ``from_parts``.  Every reading method is safe on
    malformed mail; problems met are listed in ``warnings``.
    """

    flags: frozenset[str]
    size: int
    internaldate: datetime | None
    _data: _Parsed = field(repr=False)

    @classmethod
    def from_bytes(
        cls, raw: bytes, *, flags: Iterable[str] = (), internaldate: datetime | None = None
    ) -> MessageView:
        """A whole message; without ``internaldate`` the arrival time comes from its headers."""
        warnings: list[str] = []
        fields = parse_header_block(split_header(raw)[0], warnings)
        by_name = _index_fields(fields)
        arrival = _aware(internaldate) if internaldate is not None else arrival_from_headers(by_name)
        data = _Parsed(fields, by_name, raw, None, warnings)
        return cls(_canonical_flags(flags), crlf_size(raw), arrival, data)

    @classmethod
    def from_parts(
        cls,
        *,
        header: bytes,
        size: int,
        internaldate: datetime | None,
        flags: Iterable[str],
        full: bytes | None = None,
        has_attachment: bool | None = None,
    ) -> MessageView:
        """What an IMAP FETCH returned; when ``full`` is given its own header block is used."""
        warnings: list[str] = []
        block = split_header(full)[0] if full is not None else header
        fields = parse_header_block(block, warnings)
        data = _Parsed(fields, _index_fields(fields), full, has_attachment, warnings)
        return cls(_canonical_flags(flags), size, _aware(internaldate), data)

    def with_flags(self, flags: Iterable[str]) -> MessageView:
        """The same message with other flags (what later rules see after a flag action)."""
        return replace(self, flags=_canonical_flags(flags))

    # -- headers

    @property
    def warnings(self) -> list[str]:
        return self._data.warnings

    @property
    def has_full(self) -> bool:
        """Whether the whole message (and so its body) is known."""
        return self._data.full is not None

    def raw_header_values(self, name: str) -> list[str]:
        """Every occurrence of a header, unfolded but not decoded."""
        return list(self._data.by_name.get(name.lower(), ()))

    def header_values(self, name: str) -> list[str]:
        """Every occurrence of a header, unfolded and RFC 2047-decoded (raw when undecodable)."""
        key = name.lower()
        cached = self._data.decoded.get(key)
        if cached is None:
            cached = [self._decode(name, raw) for raw in self._data.by_name.get(key, ())]
            self._data.decoded[key] = cached
        return list(cached)

    def _decode(self, name: str, raw: str) -> str:
        decoded = decode_words(raw)
        if decoded is None:
            _warn(self._data.warnings, f"header {name!r} has encoded words that cannot be decoded; compared raw")
            return raw
        return decoded

    def header_items(self) -> list[tuple[str, str]]:
        """All fields in order as (name as written, decoded value)."""
        return [(name, self._decode(name, raw)) for name, raw in self._data.fields]

    def header_names(self) -> list[str]:
        """Each header's name once, as first written, in order."""
        names: dict[str, str] = {}
        for name, _ in self._data.fields:
            names.setdefault(name.lower(), name)
        return list(names.values())

    def addresses(self, name: str) -> list[Address]:
        """The addresses of every occurrence of a header; groups and unparseable text give none."""
        key = name.lower()
        cached = self._data.addresses.get(key)
        if cached is None:
            cached = [address for raw in self._data.by_name.get(key, ()) for address in parse_addresses(raw)]
            self._data.addresses[key] = cached
        return list(cached)

    def sent_date(self) -> datetime | None:
        """The first ``Date:`` header, parsed; None when absent or unreadable."""
        if self._data.sent_date is None:
            dates = self._data.by_name.get("date", [])
            moment = parse_date(dates[0]) if dates else None
            if dates and moment is None:
                _warn(self._data.warnings, f"the Date header cannot be read: {dates[0][:60]!r}")
            self._data.sent_date = (moment,)
        return self._data.sent_date[0]

    @property
    def message_id(self) -> str | None:
        values = self.header_values("Message-ID")
        return values[0].strip() if values else None

    @property
    def subject(self) -> str:
        values = self.header_values("Subject")
        return values[0] if values else ""

    # -- body

    def _mime(self) -> MimeSummary:
        if self._data.mime is None:
            if self._data.full is None:
                raise NotFetched("the message body was not fetched")
            self._data.mime = summarise_mime(self._data.full, self._data.warnings)
        return self._data.mime

    def body_text(self) -> str:
        """Decoded text of the non-attachment text parts outside attached messages; HTML as visible text."""
        return self._mime().body

    def has_body(self) -> bool:
        """Whether the message goes on after its header block; one that ends there has no body (RFC 5173 §5)."""
        raw = self._data.full
        if raw is None:
            raise NotFetched("the message body was not fetched")
        return raw.startswith((b"\n", b"\r\n")) or _HEADER_END.search(raw) is not None

    def text(self) -> str:
        """IMAP ``TEXT``: every header line (decoded, ``Name: value``) and then the body."""
        lines = "\n".join(f"{name}: {value}" for name, value in self.header_items())
        return f"{lines}\n\n{self.body_text()}"

    def attachments(self) -> tuple[AttachmentInfo, ...]:
        """The attachment parts (§7), outside attached messages."""
        return self._mime().attachments

    def part_headers(self) -> tuple[tuple[tuple[str, str], ...], ...]:
        """Each MIME part's header fields (decoded), the message's own first."""
        return self._mime().part_headers

    def has_attachment(self) -> bool:
        """§7 on the whole message when known, else the answer the fetch gave (from BODYSTRUCTURE)."""
        if self._data.full is None and self._data.attachment_hint is not None:
            return self._data.attachment_hint
        return self._mime().has_attachment

    def flag_keys(self) -> frozenset[str]:
        """The flags' comparison keys (IMAP flags are case-insensitive)."""
        return frozenset(flag_key(flag) for flag in self.flags)
