"""One face for every IMAP server the behaviour tests run against (Dovecot, Cyrus in both layouts).

Tests speak of folders as rule files do (``/``-separated, relative to the personal
namespace); an :class:`Account` translates to and from what its server calls them,
so the same assertions hold on every server.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from tests.support.cyrus import VARIANTS, Cyrus, CyrusUser, Layout
from tests.support.dovecot import Dovecot, User
from tests.support.workspace import Snapshot, _entry

# Dovecot as the suite configures it: no prefix, "/" — the shape Cyrus calls
# altnamespace + unixhierarchysep, so rule names and server names coincide.
DOVECOT_NAMING = Layout("dovecot", altnamespace=True, unixhierarchysep=True)
KINDS = ("dovecot", "cyrus-default", "cyrus-alt")

AnyUser = User | CyrusUser


class ImapServer(Protocol):
    host: str

    def client(self, user: Any) -> AbstractContextManager[IMAPClient]: ...

    def append(self, user: Any, raw: bytes, folder: str = "INBOX", flags: tuple[str, ...] = (),
               internaldate: datetime | None = None) -> int | None: ...

    def rawlog_commands(self, user: Any) -> list[str]: ...

    def clear_rawlog(self, user: Any) -> None: ...

    def capabilities(self, user: Any) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class Account:
    """A fresh account on one server; ``kind`` is the test id (``dovecot``, ``cyrus-default``, ``cyrus-alt``)."""

    kind: str
    server: ImapServer
    user: AnyUser
    naming: Layout

    @property
    def host(self) -> str:
        return self.user.host

    @property
    def port(self) -> int:
        return self.user.port

    @property
    def username(self) -> str:
        return self.user.username

    @property
    def password(self) -> str:
        return self.user.password

    def native(self, folder: str) -> str:
        return self.naming.native(folder)

    def portable(self, name: str) -> str:
        return self.naming.portable(name)

    def client(self) -> AbstractContextManager[IMAPClient]:
        return self.server.client(self.user)

    def append(self, raw: bytes, folder: str = "INBOX", flags: tuple[str, ...] = (),
               internaldate: datetime | None = None) -> int | None:
        """APPEND to ``folder`` (a rule-file name), creating it if needed."""
        return self.server.append(self.user, raw, folder, flags, internaldate)

    def append_all(self, deliveries: list[tuple[bytes, tuple[str, ...], datetime]], folder: str = "INBOX") -> None:
        """APPEND (raw, flags, arrival) messages in one MULTIAPPEND command: both servers offer it."""
        with self.client() as imap:
            # CRLF line ends as imaplib's APPEND writes them: Cyrus refuses bare newlines.
            typ, data = imap.multiappend(self.native(folder), [{"msg": _crlf(raw), "flags": flags, "date": when}
                                                               for raw, flags, when in deliveries])
        if typ != "OK":  # imaplib returns a NO instead of raising it
            raise IMAPClientError(f"MULTIAPPEND refused: {data!r}")

    def create_folder(self, folder: str) -> None:
        """CREATE ``folder`` (a rule-file name) unless it exists."""
        with self.client() as imap:
            if not imap.folder_exists(self.native(folder)):
                imap.create_folder(self.native(folder))

    def commands(self) -> list[str]:
        """The commands this account's sessions sent so far (``UID MOVE`` …)."""
        return self.server.rawlog_commands(self.user)

    def clear_commands(self) -> None:
        """Forget the traffic so far (close this account's own sessions first)."""
        self.server.clear_rawlog(self.user)

    def capabilities(self) -> list[str]:
        return self.server.capabilities(self.user)

    def snapshot(self) -> Snapshot:
        """Every non-empty folder, by its rule-file name, as a multiset of (Message-ID, flags); changes nothing."""
        folders: Snapshot = {}
        with self.client() as imap:
            for flags, _delimiter, name in imap.list_folders():
                if b"\\Noselect" in flags or b"\\NonExistent" in flags:
                    continue
                imap.select_folder(name, readonly=True)
                uids = imap.search()
                data = imap.fetch(uids, ["FLAGS", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]) if uids else {}
                folders[self.portable(name)] = Counter(_entry(item) for item in data.values())
        return {name: content for name, content in folders.items() if content}


@dataclass(frozen=True, slots=True)
class ServerUnderTest:
    """Hands out fresh accounts on one kind of server, optionally one that hides capabilities."""

    kind: str
    new_account: Callable[[tuple[str, ...]], Account]

    def account(self, *, without: tuple[str, ...] = ()) -> Account:
        """A fresh account with an empty INBOX; ``without=("MOVE", "UIDPLUS")`` on a server lacking those."""
        return self.new_account(tuple(sorted({name.upper() for name in without})))


def dovecot_accounts(session: Dovecot, factory: Callable[..., Dovecot]) -> Callable[[tuple[str, ...]], Account]:
    def new(without: tuple[str, ...]) -> Account:
        server = factory(without=without) if without else session
        return Account("dovecot", server, server.add_user(), DOVECOT_NAMING)
    return new


def cyrus_accounts(server: Cyrus) -> Callable[[tuple[str, ...]], Account]:
    variants = {tuple(sorted(hidden)): name for name, hidden in VARIANTS.items()}

    def new(without: tuple[str, ...]) -> Account:
        user = server.add_user()
        if without:
            if without not in variants:
                raise ValueError(f"no Cyrus listener hides exactly {without}; add one to VARIANTS")
            user = server.on_variant(user, variants[without])
        return Account(server.layout.name, server, user, server.layout)
    return new


def _crlf(raw: bytes) -> bytes:
    return re.sub(rb"\r?\n", b"\r\n", raw)
