"""The seam between the planner/executor and a concrete mail store (IMAP server or Maildir).

The planner only reads (``open_folder(readonly=True)``, ``search``, ``fetch``); the executor
calls the mutating methods with the UID sets the plan recorded.  Both backends implement
the same protocol, so a plan reads the same whatever store it was made from.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from mailrules.query import SearchQuery

if TYPE_CHECKING:
    from mailrules.message import MessageView


@dataclass(frozen=True, slots=True)
class FolderStatus:
    name: str
    uidvalidity: int
    uidnext: int
    exists: int


@dataclass(frozen=True, slots=True)
class FetchNeeds:
    """What the local checks of a plan need to read for each candidate message.

    RFC822.SIZE, INTERNALDATE and FLAGS are always fetched: they cost the server nothing.
    ``headers`` are lower-case names fetched with ``BODY.PEEK[HEADER.FIELDS (...)]``;
    ``all_headers`` fetches the whole header block (``BODY.PEEK[HEADER]``);
    ``body`` fetches the whole message (``BODY.PEEK[]``); ``structure`` fetches BODYSTRUCTURE.
    """

    headers: frozenset[str] = frozenset()
    all_headers: bool = False
    body: bool = False
    structure: bool = False

    def __or__(self, other: FetchNeeds) -> FetchNeeds:
        return FetchNeeds(
            headers=self.headers | other.headers,
            all_headers=self.all_headers or other.all_headers,
            body=self.body or other.body,
            structure=self.structure or other.structure,
        )

    @property
    def anything(self) -> bool:
        return bool(self.headers) or self.all_headers or self.body or self.structure


@dataclass(frozen=True, slots=True)
class Features:
    """What a store can do, in the project's own terms; each backend reads them from its own
    protocol (IMAP capabilities, the Maildir layout) and nothing above it asks that protocol."""

    # Moves in one step (IMAP MOVE, RFC 6851); otherwise the executor copies, then removes
    # exactly the originals that arrived.
    supports_move: bool = False
    # Removes exactly the given messages (IMAP UID EXPUNGE, RFC 4315); otherwise a removed
    # message stays flagged \Deleted, since a plain EXPUNGE would also take other clients' deletions.
    expunges_by_uid: bool = True
    # Says which UIDs copies got in the destination (COPYUID, RFC 4315).
    reports_copy_uids: bool = False
    # search() answers exactly; False when it only pre-filters and every rule is decided locally.
    exact_search: bool = True
    # Header text search matches whole words only (Gmail), so only a header's presence may narrow.
    whole_word_search: bool = False
    # Folders say what they are for (\Sent, \Trash: IMAP SPECIAL-USE, RFC 6154).
    special_use: bool = False
    # Stores keywords ($Later, Junk) besides the system flags.
    keywords: bool = True
    # Holds only so many distinct keywords per folder (a Maildir's 26 letters); None: no limit.
    keyword_slots: int | None = None


@dataclass(frozen=True, slots=True)
class CopyResult:
    """What a COPY/MOVE reported: the new UIDs in the destination (COPYUID), when the server says."""

    dest_uidvalidity: int | None
    uid_map: dict[int, int]


class Mailbox(Protocol):
    """A mail store with folders of UID-addressed messages."""

    @property
    def label(self) -> str:
        """e.g. ``imap://alice@mail.example.org`` or ``maildir:/home/a/Mail``, never a password."""
        ...

    @property
    def delimiter(self) -> str: ...

    @property
    def features(self) -> Features: ...

    def list_folders(self) -> list[str]: ...

    def create_folder(self, folder: str) -> None: ...

    def open_folder(self, folder: str, *, readonly: bool) -> FolderStatus: ...

    def status(self, folder: str) -> FolderStatus:
        """UIDVALIDITY/UIDNEXT/EXISTS of any folder without selecting it (IMAP STATUS)."""
        ...

    def reconnect(self) -> None:
        """Log in again after a ConnectionLost; no folder is selected afterwards."""
        ...

    def search(self, query: SearchQuery, *, min_uid: int = 1) -> list[int]:
        """UIDs in the open folder with UID >= min_uid that ``query``'s keys may match: all of
        them, or more when ``features.exact_search`` is False (never fewer)."""
        ...

    def fetch(self, uids: Sequence[int], needs: FetchNeeds) -> Iterator[tuple[int, MessageView]]:
        """Yield (uid, message) for the open folder in batches; vanished UIDs are skipped."""
        ...

    def fetch_raw(self, uid: int) -> bytes | None: ...

    def add_flags(self, uids: Sequence[int], flags: Sequence[str]) -> None: ...

    def remove_flags(self, uids: Sequence[int], flags: Sequence[str]) -> None: ...

    def copy(self, uids: Sequence[int], folder: str) -> CopyResult: ...

    def move(self, uids: Sequence[int], folder: str) -> CopyResult: ...

    def delete(self, uids: Sequence[int]) -> None:
        """Flag exactly these UIDs ``\\Deleted`` and expunge exactly them (never a plain EXPUNGE)."""
        ...

    def append(self, folder: str, message: bytes, flags: Sequence[str]) -> None: ...

    def close(self) -> None: ...

    # What a store answers where it has nothing particular to say: see StoreDefaults.
    notices: list[str]
    unnamed_folders: Sequence[str]

    def special_use_folders(self) -> dict[str, str]: ...

    def canonical_folder(self, name: str) -> str: ...

    def folder_problem(self, name: str) -> str | None: ...

    def unstorable_flags(self, folder: str, flags: Collection[str]) -> dict[str, str]: ...

    def holds_copy(self, uid: int, folder: str) -> bool: ...


class StoreDefaults:
    """The neutral answers of the Mailbox questions a store may have nothing to say about;
    a backend derives from it and overrides what its protocol knows."""

    unnamed_folders: Sequence[str] = ()

    def __init__(self) -> None:
        self.notices: list[str] = []  # said once at the end of a run (keywords dropped, say)

    def special_use_folders(self) -> dict[str, str]:
        """Special-use attribute (``\\Trash``, ``\\Sent`` ...) -> the folder the store gives it."""
        return {}

    def canonical_folder(self, name: str) -> str:
        """The one spelling of a rule's folder name in this store."""
        return name

    def folder_problem(self, name: str) -> str | None:
        """Why a rule's folder name can't name a folder in this store, or None."""
        return None

    def unstorable_flags(self, folder: str, flags: Collection[str]) -> dict[str, str]:
        """The flags among ``flags`` that ``folder`` can't hold, with the reason."""
        return {}

    def holds_copy(self, uid: int, folder: str) -> bool:
        """Whether ``folder`` already has an earlier run's copy of message ``uid`` of the open
        folder, where the store can tell without the journal."""
        return False
