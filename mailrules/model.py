"""The rule language as data: frozen dataclasses for rule sets, conditions and actions.

Every later stage (local matcher, IMAP SEARCH compiler, Sieve export, planner) is a
function over these types, so nothing here knows about IMAP, files or YAML.  Source
locations travel with the nodes for error messages but never take part in equality.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Literal, TypeAlias

from mailrules.errors import Loc

NOWHERE = Loc("<builtin>", 0, 0)

# Canonical names of the IMAP system flags; keywords are kept as written.
SYSTEM_FLAGS = {
    "seen": "\\Seen",
    "answered": "\\Answered",
    "flagged": "\\Flagged",
    "deleted": "\\Deleted",
    "draft": "\\Draft",
}


def canonical_flag(name: str) -> str:
    """Return the canonical spelling of a flag: system flags as ``\\Seen``, keywords as given.

    >>> canonical_flag("seen"), canonical_flag("\\\\SEEN"), canonical_flag("$Invoice")
    ('\\\\Seen', '\\\\Seen', '$Invoice')
    """
    bare = name[1:] if name.startswith("\\") else name
    return SYSTEM_FLAGS.get(bare.lower(), name)


def flag_key(flag: str) -> str:
    """The comparison key of a flag: IMAP flags and keywords are case-insensitive."""
    return canonical_flag(flag).lower()


# ---------------------------------------------------------------- conditions

StringOperator = Literal["contains", "is", "matches", "regex"]
AddressOperator = Literal["address", "domain", "localpart", "user", "detail", "display_name"]


@dataclass(frozen=True, slots=True)
class HeaderTest:
    """A string operator on the decoded values of one or more headers.

    ``key`` is the rule-file key that produced it (``from``, ``recipient``, ``header``…),
    ``names`` the header names it reads (``recipient`` reads To, Cc and Bcc).
    ``list_id`` means the value is reduced to the identifier inside ``<...>`` first.
    The test holds when any value of any named header matches any of ``values``.
    """

    key: str
    names: tuple[str, ...]
    operator: StringOperator
    values: tuple[str, ...]
    case_sensitive: bool = False
    list_id: bool = False
    loc: Loc = field(default=NOWHERE, compare=False)
    index: int | None = None  # only the N-th occurrence (1 = topmost, -1 = last; RFC 5260)


@dataclass(frozen=True, slots=True)
class AddressTest:
    """An address operator on the addresses parsed from one or more headers."""

    key: str
    names: tuple[str, ...]
    operator: AddressOperator
    values: tuple[str, ...]
    case_sensitive: bool = False
    loc: Loc = field(default=NOWHERE, compare=False)
    index: int | None = None  # only the addresses of the N-th occurrence of the header


@dataclass(frozen=True, slots=True)
class HeaderExists:
    """``exists: true/false``: holds when some named header is present (or, if not ``present``, none is)."""

    key: str
    names: tuple[str, ...]
    present: bool
    loc: Loc = field(default=NOWHERE, compare=False)


Relation = Literal["gt", "ge", "lt", "le", "eq", "ne"]


@dataclass(frozen=True, slots=True)
class CountTest:
    """``count:``: how many occurrences of the headers (or, with ``addresses``, valid addresses in them) there are."""

    key: str
    names: tuple[str, ...]
    relation: Relation
    number: int
    addresses: bool = False
    loc: Loc = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class BodyTest:
    """``body`` (decoded text parts) or ``text`` (header lines plus body)."""

    scope: Literal["body", "text"]
    operator: Literal["contains", "regex"]
    values: tuple[str, ...]
    case_sensitive: bool = False
    loc: Loc = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class SizeTest:
    """``larger``/``smaller``: strict comparison with RFC822.SIZE in bytes."""

    operator: Literal["larger", "smaller"]
    size: int
    loc: Loc = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class AgeTest:
    """``older_than``/``newer_than``: arrival time compared exactly with now - seconds."""

    operator: Literal["older_than", "newer_than"]
    seconds: int
    loc: Loc = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class DateTest:
    """``before``/``since`` (arrival) and ``sent_before``/``sent_since`` (Date header), by calendar day."""

    source: Literal["arrival", "sent"]
    operator: Literal["before", "since"]
    day: date
    loc: Loc = field(default=NOWHERE, compare=False)


DatePart = Literal["year", "month", "day", "hour", "minute", "weekday"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = Python's weekday()


@dataclass(frozen=True, slots=True)
class PartCheck:
    """One date part's constraint: equal to one of ``values`` (if any) and every relation holds."""

    part: DatePart
    values: tuple[int, ...] = ()
    relations: tuple[tuple[Relation, int], ...] = ()


@dataclass(frozen=True, slots=True)
class DatePartTest:
    """``sent:`` (Date header) or ``arrived:`` (INTERNALDATE): date parts in ``zone`` (RFC 5260).

    ``zone`` is an IANA name, a fixed offset such as ``+0100``, or ``original`` (the
    timestamp's own offset).
    """

    source: Literal["arrival", "sent"]
    checks: tuple[PartCheck, ...]
    zone: str = "UTC"
    loc: Loc = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class FlagTest:
    """A flag or keyword present (``present=True``) or absent; ``flag`` is canonical (``\\Seen``, ``$Label``)."""

    flag: str
    present: bool
    loc: Loc = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class AttachmentTest:
    present: bool
    loc: Loc = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class AttachmentPartTest:
    """``attachment:``: some attachment part satisfies every given key.

    ``types`` are ``type/subtype``, ``type/*`` or ``type`` (lower case); the file name is
    compared with ``filename_operator`` like a header value.
    """

    filename_operator: StringOperator | None = None
    filenames: tuple[str, ...] = ()
    case_sensitive: bool = False
    types: tuple[str, ...] = ()
    larger: int | None = None
    smaller: int | None = None
    loc: Loc = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class MimeHeaderTest:
    """``mime_header:``: a header of any MIME part, the message's own included (RFC 5703 ``:mime :anychild``)."""

    name: str
    operator: StringOperator | Literal["exists"]
    values: tuple[str, ...] = ()
    case_sensitive: bool = False
    present: bool = True  # for ``exists``
    loc: Loc = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class All:
    """Every child holds; ``All(())`` matches every message."""

    children: tuple[Condition, ...]
    loc: Loc = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Any:
    """Some child holds; ``Any(())`` matches nothing."""

    children: tuple[Condition, ...]
    loc: Loc = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Not:
    child: Condition
    loc: Loc = field(default=NOWHERE, compare=False)


Condition: TypeAlias = (
    HeaderTest
    | AddressTest
    | HeaderExists
    | CountTest
    | BodyTest
    | SizeTest
    | AgeTest
    | DateTest
    | DatePartTest
    | FlagTest
    | AttachmentTest
    | AttachmentPartTest
    | MimeHeaderTest
    | All
    | Any
    | Not
)

# ---------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Move:
    folder: str
    loc: Loc = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Copy:
    folder: str
    loc: Loc = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Trash:
    """Move to the trash folder, already resolved from ``defaults.trash_folder`` when not given.

    A bare ``trash`` has ``use='\\Trash'``: the server's special-use trash folder (RFC 6154)
    wins over ``folder``, which is the fallback for servers that name none.
    """

    folder: str
    loc: Loc = field(default=NOWHERE, compare=False)
    use: str | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    loc: Loc = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class AddFlags:
    flags: tuple[str, ...]  # canonical
    loc: Loc = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class RemoveFlags:
    flags: tuple[str, ...]  # canonical
    loc: Loc = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Reply:
    """An auto-reply; ``template`` is an absolute path resolved against the rule file, or None for ``body``."""

    subject: str | None = None
    body: str | None = None
    template: str | None = None
    sender: str | None = None  # the rule file's ``from:``
    once_per_seconds: int = 7 * 86400
    save_to: str | None = None
    require_recipient: bool = True
    loc: Loc = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Redirect:
    address: str
    loc: Loc = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Stop:
    loc: Loc = field(default=NOWHERE, compare=False)


Action: TypeAlias = Move | Copy | Trash | Delete | AddFlags | RemoveFlags | Reply | Redirect | Stop
TerminalAction: TypeAlias = Move | Trash | Delete | Stop


def is_terminal(action: Action) -> bool:
    return isinstance(action, (Move, Trash, Delete, Stop))


# ---------------------------------------------------------------- rules


@dataclass(frozen=True, slots=True)
class ActiveWindow:
    """``active:``: the calendar days (both included, read in ``zone``) on which a rule applies."""

    start: date | None = None
    until: date | None = None
    zone: str = "UTC"
    loc: Loc = field(default=NOWHERE, compare=False)

    def __str__(self) -> str:
        start = f"from {self.start.isoformat()} " if self.start else ""
        until = f"until {self.until.isoformat()} " if self.until else ""
        return f"{start}{until}({self.zone})"


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule, with the defaults of the file it came from already applied."""

    name: str
    when: Condition
    then: tuple[Action, ...]
    folders: tuple[str, ...] = ("INBOX",)  # names or globs
    description: str | None = None
    enabled: bool = True
    create_folders: bool = True
    source: str = "<memory>"  # the rule file it came from
    loc: Loc = field(default=NOWHERE, compare=False)
    folder_locs: tuple[Loc, ...] = field(default=(), compare=False)  # where each of ``folders`` is written
    active: ActiveWindow | None = None  # None: every day

    @property
    def terminal(self) -> bool:
        return any(is_terminal(action) for action in self.then)


@dataclass(frozen=True, slots=True)
class RuleSet:
    """All rules in evaluation order: included files first, in the order listed."""

    rules: tuple[Rule, ...]
    files: tuple[str, ...] = ()
    account: str | None = None  # the account the top-level file names, if any

    @property
    def enabled_rules(self) -> tuple[Rule, ...]:
        return tuple(rule for rule in self.rules if rule.enabled)
