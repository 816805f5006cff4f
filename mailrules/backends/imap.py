"""The IMAP backend: the ``Mailbox`` protocol over imapclient.

This is the only module that imports imapclient, and it does so when it connects,
so commands that never talk to a server don't pay for it.  Every imapclient,
imaplib, socket and ssl error is turned into a ``BackendError`` here; a dropped
connection becomes ``ConnectionLost``.  Read-only operations (LIST, STATUS,
EXAMINE, SEARCH, FETCH) reconnect once by themselves; operations that change
the mailbox never repeat themselves: the executor decides, knowing its journal.

Where imapclient 4.1 falls short, a few helpers at the end of the file reach one
level down (its ``_raw_command_untagged`` and imaplib's ``untagged_responses``):
- its search criteria encoder leaves ``(urgent)`` unquoted (Dovecot answers BAD)
  and encodes nested lists as US-ASCII whatever the charset;
- ``fetch`` refuses compact UID sets such as ``1:500`` (it converts them to int);
- COPY and MOVE don't return the COPYUID response code (RFC 4315).
"""

from __future__ import annotations

import base64
import imaplib
import re
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from mailrules.accounts import IMAP_PORTS
from mailrules.backends.base import CopyResult, FetchNeeds, Features, FolderStatus, StoreDefaults
from mailrules.errors import (AuthenticationFailed, BackendError, CapabilityError, ConfigurationError, ConnectionLost,
                              FolderRefused, MessagesVanished, MissingFolder,
                              redact, register_secret)
from mailrules.folders import RULE_DELIMITER, FolderNames
from mailrules.signals import on_interrupt
from mailrules.query import SearchQuery
from mailrules.backends.imap_wire import (
    body_section,
    delimiter_of,
    fetch_items,
    in_personal_namespace,
    is_8bit,
    merge_copy_results,
    message_view,
    names_from_namespace,
    parse_copyuid,
    quoted_string,
    search_tokens,
    special_uses,
    unselectable,
    with_parents,
)
from mailrules.uidset import batched, uid_ranges

if TYPE_CHECKING:
    from imapclient import IMAPClient

    from mailrules.message import MessageView

TlsMode = Literal["ssl", "starttls", "none"]
Trace = Callable[[str], None]
T = TypeVar("T")

# UIDs per FETCH: header blocks are small (~1 KB), whole messages may be large, and a
# batch is held in memory until its response is complete.  Whole messages are batched by
# their RFC822.SIZE too, so memory follows bytes, not message counts: a batch holds at
# most BODY_BATCH_BYTES, and a larger message is fetched on its own.
HEADER_BATCH = 10_000
BODY_BATCH = 500
BODY_BATCH_BYTES = 32 * 1024 * 1024
# RFC 7162 §4 asks clients to keep command lines near 8 KB; Dovecot accepts 64 KiB
# (imap_max_line_length), and fewer, larger UID MOVE/STORE commands cost it far less.
PORTABLE_LINE = 8_000
DOVECOT_LINE = 60_000
# Gmail's capability: its header SEARCH matches whole words, so `invoice` misses `invoices`.
WORD_SEARCH = "X-GM-EXT-1"
_DROPPED = (imaplib.IMAP4.abort, OSError, EOFError)
# RFC 5530 response codes after which the same command can succeed without anyone fixing
# anything: the server is busy, short of a resource, or its back end is down for now.
TRANSIENT_CODES = frozenset({"UNAVAILABLE", "INUSE", "LIMIT", "SERVERBUG", "OVERQUOTA", "EXPUNGEISSUED"})


class ImapMailbox(StoreDefaults):
    """An IMAP account.  Connects on first use (or ``connect()``); ``close()`` logs out.

    ``trace`` receives a line per IMAP command (``-v``): as sent, except that literals
    are shown inline and the password is replaced.
    """

    def __init__(self, host: str, port: int | None = None, *, tls: TlsMode = "ssl", username: str,
                 password: str = "", ca_file: str | None = None, timeout: float = 60.0, trace: Trace | None = None,
                 oauth2: Callable[[], str] | None = None):
        if tls not in IMAP_PORTS:
            raise ValueError(f"tls must be one of {sorted(IMAP_PORTS)}, not {tls!r}")
        self.host = host
        self.port = port or IMAP_PORTS[tls]
        self.tls = tls
        self.username = username
        self._password = password
        self._oauth2 = oauth2  # gives an access token at each login; then no password is used
        register_secret(password)  # servers may echo it back in an error
        self.ca_file = ca_file
        self.timeout = timeout
        self._trace = trace
        super().__init__()
        self.label = f"imap://{username}@{host}:{self.port}"
        self._client: IMAPClient | None = None
        self._capabilities: frozenset[str] = frozenset()
        self._names: FolderNames | None = None
        self.unnamed_folders: list[str] = []  # listed by the server, but without a rule name
        self._special_use: dict[str, str] | None = None
        self._selected: tuple[str, bool] | None = None  # (folder, readonly)
        self._selected_before_drop: tuple[str, bool] | None = None
        self._uidvalidity: int | None = None
        self._line_budget = PORTABLE_LINE  # raised at login when the server is Dovecot
        self._unhook: Callable[[], None] = lambda: None

    def __repr__(self) -> str:
        return f"ImapMailbox({self.label!r}, tls={self.tls!r})"

    def __enter__(self) -> ImapMailbox:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ session

    def connect(self) -> ImapMailbox:
        if self._client is None:
            self._client = self._login()
            self._unhook = on_interrupt(lambda client=self._client: _cut(client))
        return self

    def reconnect(self) -> None:
        """Log in again (after ``ConnectionLost``); no folder is selected afterwards."""
        self._drop()
        self.connect()

    def close(self) -> None:
        client, self._client = self._client, None
        self._selected = None
        self._unhook()
        if client is not None:
            self._emit("LOGOUT")
            try:
                client.logout()
            except Exception:  # the session is over either way; a failed LOGOUT changes nothing
                _shutdown(client)

    @property
    def capabilities(self) -> frozenset[str]:
        self.connect()
        return self._capabilities

    @property
    def expunges_by_uid(self) -> bool:
        """Whether ``delete`` removes messages (UID EXPUNGE, RFC 4315) or can only flag them."""
        return "UIDPLUS" in self.capabilities

    @property
    def features(self) -> Features:
        capabilities = self.capabilities
        return Features(supports_move="MOVE" in capabilities, expunges_by_uid="UIDPLUS" in capabilities,
                        reports_copy_uids="UIDPLUS" in capabilities, exact_search=True,
                        whole_word_search=WORD_SEARCH in capabilities, special_use="SPECIAL-USE" in capabilities)

    @property
    def delimiter(self) -> str:
        """The delimiter of the folder names this class speaks: rule names, ``/`` between
        levels (``""`` on a server without hierarchy); ``names`` maps them to the server's."""
        return RULE_DELIMITER if self.names.delimiter else ""

    @property
    def names(self) -> FolderNames:
        if self._names is None:
            self._names = self._learn_names()
        return self._names

    def _learn_names(self) -> FolderNames:
        """The personal namespace's delimiter and prefix: NAMESPACE (RFC 2342), else LIST "" ""."""
        if "NAMESPACE" in self.capabilities:
            learned = names_from_namespace(self._read("NAMESPACE", lambda client: client.namespace()))
            if learned is not None:
                return learned
        listing = self._read('LIST "" ""', lambda client: client.list_folders("", ""))
        return FolderNames(delimiter=delimiter_of(listing))

    def special_use_folders(self) -> dict[str, str]:
        """Special-use attribute (``\\Trash``, ``\\Sent`` ...) -> the folder the server gives it."""
        if self._special_use is None:
            self.list_folders()
        return dict(self._special_use or {})

    def folder_problem(self, name: str) -> str | None:
        """Why a rule's folder name can't name a folder on this server, or None."""
        return self.names.problem(name)

    def canonical_folder(self, name: str) -> str:
        return self.names.canonical(name)

    def _server_name(self, folder: str) -> str:
        return self.names.to_server(folder)

    def _login(self) -> IMAPClient:
        from imapclient import IMAPClient

        context = self._ssl_context() if self.tls != "none" else None
        with self._connect_errors():
            client = IMAPClient(self.host, port=self.port, ssl=self.tls == "ssl", ssl_context=context,
                                timeout=self.timeout)
            try:
                if self.tls == "starttls":
                    self._starttls(client, context)
                if self._oauth2 is not None:
                    self._oauth2_login(client)
                else:
                    self._emit(f"LOGIN {self.username} ****")
                    client.login(self.username, self._password)
                self._capabilities = frozenset(cap.decode("ascii").upper() for cap in client.capabilities())
            except BaseException:
                _shutdown(client)
                raise
        client.normalise_times = False  # keep INTERNALDATE's zone: age tests need aware datetimes
        self._line_budget = DOVECOT_LINE if b"dovecot" in (client.welcome or b"").lower() else PORTABLE_LINE
        return client

    def _oauth2_login(self, client: IMAPClient) -> None:
        """AUTHENTICATE with the mechanism the server offers; a refusal says what its challenge said."""
        from mailrules.oauth.sasl import SaslExchange, choose_mechanism, initial_response

        assert self._oauth2 is not None
        offered = [cap.decode("ascii", "replace") for cap in client.capabilities()]
        mechanism = choose_mechanism(offered)
        where = f"{self.host}:{self.port}"
        if mechanism is None:
            auth = " ".join(cap for cap in offered if cap.upper().startswith("AUTH=")) or "none"
            raise AuthenticationFailed(f"IMAP server {where} offers neither AUTH=OAUTHBEARER nor AUTH=XOAUTH2 "
                                       f"(it offers {auth}), so OAuth2 sign-in is impossible there")
        token = self._oauth2()
        response = initial_response(mechanism, self.username, token, self.host, self.port)
        for secret in (token, response, base64.b64encode(response)):
            register_secret(secret)  # as given, and as it goes over the wire
        exchange = SaslExchange(mechanism, response)
        self._emit(f"AUTHENTICATE {mechanism} ****")
        try:
            client._imap.authenticate(mechanism, exchange)
        except imaplib.IMAP4.error as exc:
            if isinstance(exc, imaplib.IMAP4.abort):
                raise
            text = server_text(exc)
            # [UNAVAILABLE] and the like stay transient: the server could not check the token now.
            raise login_error(f"IMAP server {where} refused the OAuth2 sign-in of {self.username} "
                              f"({mechanism}): {exchange.refusal or text or 'refused'}", text) from None

    def _uid_sets(self, uids: Sequence[int]) -> list[str]:
        return uid_ranges(uids, max_chars=self._line_budget)

    def _ssl_context(self) -> ssl.SSLContext:
        try:
            return ssl.create_default_context(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"can't use ca_file {self.ca_file!r} for {self.host}: {exc}") from exc

    def _starttls(self, client: IMAPClient, context: ssl.SSLContext | None) -> None:
        if not client.has_capability("STARTTLS"):
            raise ConfigurationError(
                f"{self.host}:{self.port} does not offer STARTTLS, which the account requires; "
                "not logging in without TLS"
            )
        self._emit("STARTTLS")
        client.starttls(context)

    def _connect_errors(self) -> _ErrorMap:
        return _ErrorMap(self, "LOGIN", None, connecting=True)

    def _drop(self) -> None:
        client, self._client = self._client, None
        self._selected = None
        self._unhook()
        if client is not None:
            _shutdown(client)

    def _emit(self, line: str) -> None:
        if self._trace is not None:
            self._trace(line)

    # ------------------------------------------------------------ running commands

    def _folder(self) -> str | None:
        return self._selected[0] if self._selected else None

    def _change(self, command: str, call: Callable[[IMAPClient], T], folder: str | None = None) -> T:
        """Run a command that changes the mailbox: exactly once, whatever happens.

        ``folder`` is the one the command names, for error messages (default: the open one).
        """
        self._emit(command)
        with _ErrorMap(self, command, folder or self._folder()):
            return call(self._connected())

    def _read(self, command: str, call: Callable[[IMAPClient], T], folder: str | None = None) -> T:
        """Run a command that changes nothing (SELECT included); after a dropped
        connection, log in again, reopen the folder and try once more."""
        self._emit(command)
        try:
            with _ErrorMap(self, command, folder or self._folder()):
                return call(self._connected())
        except ConnectionLost:
            selected = self._selected_before_drop
            self.reconnect()
            if selected is not None:
                self._reselect(*selected)
            self._emit(command)
            with _ErrorMap(self, command, folder or self._folder()):
                return call(self._connected())

    def _connected(self) -> IMAPClient:
        self.connect()
        assert self._client is not None
        return self._client

    def _lost(self) -> None:
        """Forget a dead session, remembering the folder a read-only retry must reopen."""
        self._selected_before_drop = self._selected
        self._drop()

    def _reselect(self, folder: str, readonly: bool) -> None:
        before = self._uidvalidity
        status = self.open_folder(folder, readonly=readonly)
        if before is not None and status.uidvalidity != before:
            raise BackendError(
                f"UIDVALIDITY changed from {before} to {status.uidvalidity} while reconnecting; "
                "the folder was recreated, so its UIDs no longer name the same messages",
                folder=folder,
            )

    # ------------------------------------------------------------ folders

    def list_folders(self) -> list[str]:
        """Selectable folders (``\\Noselect`` parents left out), INBOX first, then by name."""
        names = self.names
        ask = self.features.special_use  # RFC 6154: some servers name the uses only when asked
        command = 'LIST "" "*"' + (" RETURN (SPECIAL-USE)" if ask else "")
        listing = self._read(command, lambda client: _list_all(client, special_use=ask))
        found: set[str] = set()
        self.unnamed_folders = []
        self._special_use = {}
        for flags, _, server_name in listing:
            if unselectable(flags):
                continue
            name = names.from_server(server_name)
            if name is not None:
                found.add(name)
                for use in special_uses(flags):
                    self._special_use.setdefault(use, name)
            elif in_personal_namespace(names, server_name):
                self.unnamed_folders.append(server_name)
        return sorted(found, key=lambda name: (name.upper() != "INBOX", name))

    def create_folder(self, folder: str) -> None:
        """Create ``folder`` and any missing parents, and subscribe to what was created."""
        existing = set(self.list_folders())
        for name in with_parents(folder, self.delimiter):
            if self.names.canonical(name) in existing or name.upper() == "INBOX":
                continue
            server = self._server_name(name)
            self._change(f"CREATE {quoted_string(server)}", lambda client, server=server: _create(client, server), name)
            self._change(f"SUBSCRIBE {quoted_string(server)}",
                         lambda client, server=server: client.subscribe_folder(server), name)

    def open_folder(self, folder: str, *, readonly: bool) -> FolderStatus:
        """EXAMINE (``readonly``: nothing can change, not even ``\\Seen``) or SELECT ``folder``."""
        verb = "EXAMINE" if readonly else "SELECT"
        self._selected = None
        server = self._server_name(folder)
        response = self._read(f"{verb} {quoted_string(server)}",
                              lambda client: client.select_folder(server, readonly=readonly), folder)
        self._selected = (folder, readonly)
        uidnext = response.get(b"UIDNEXT")
        if uidnext is None:  # optional in RFC 3501; STATUS always has it
            uidnext = self.status(folder).uidnext
        self._uidvalidity = int(response[b"UIDVALIDITY"])
        return FolderStatus(folder, self._uidvalidity, int(uidnext), int(response[b"EXISTS"]))

    def status(self, folder: str) -> FolderStatus:
        items = (b"UIDVALIDITY", b"UIDNEXT", b"MESSAGES")
        server = self._server_name(folder)
        response = self._read(f"STATUS {quoted_string(server)} (UIDVALIDITY UIDNEXT MESSAGES)",
                              lambda client: client.folder_status(server, items), folder)
        return FolderStatus(folder, int(response[b"UIDVALIDITY"]), int(response[b"UIDNEXT"]),
                            int(response[b"MESSAGES"]))

    # ------------------------------------------------------------ reading messages

    def search(self, query: SearchQuery, *, min_uid: int = 1) -> list[int]:
        """UIDs matching ``query``'s keys with UID >= ``min_uid``: exact, the server decides.

        Non-ASCII strings are sent as UTF-8 literals with ``CHARSET UTF-8``; a server
        that refuses that raises ``CapabilityError`` so the caller can fall back.
        """
        tokens = search_tokens(list(query.criteria))
        if min_uid > 1:
            tokens += [b"UID", f"{min_uid}:*".encode()]
        utf8 = any(is_8bit(token) for token in tokens)
        args = ([b"CHARSET", b"UTF-8"] if utf8 else []) + tokens
        command = "UID SEARCH " + " ".join(token.decode("utf-8", "replace") for token in args)
        try:
            uids = self._read(command, lambda client: _uid_search(client, args))
        except BackendError as exc:
            if utf8 and refuses_charset(exc):
                raise CapabilityError("server refused UTF-8 SEARCH", folder=exc.folder, command="UID SEARCH") from exc
            raise
        # "N:*" always includes the highest UID, even when it is below N (RFC 3501 §6.4.8).
        return sorted(uid for uid in uids if uid >= min_uid)

    def fetch(self, uids: Sequence[int], needs: FetchNeeds) -> Iterator[tuple[int, MessageView]]:
        """Yield (uid, message) in UID order, in batches; UIDs expunged meanwhile are skipped.

        The next batch is fetched on a worker thread while the caller evaluates this one, so
        the server's reading and our parsing overlap instead of taking turns.  Nothing else
        may use the connection until the iteration ends (the planner doesn't).
        """
        items = fetch_items(needs)
        batches = self._body_batches(uids) if needs.body else list(batched(uids, HEADER_BATCH))
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mailrules-fetch") as worker:
            pending = worker.submit(self._fetch_batch, batches[0], items) if batches else None
            for index, batch in enumerate(batches):
                assert pending is not None
                found = pending.result()
                if index + 1 < len(batches):
                    pending = worker.submit(self._fetch_batch, batches[index + 1], items)
                for uid in batch:
                    data = found.pop(uid, None)  # released as soon as its message is done with
                    if data is not None and b"RFC822.SIZE" in data:  # not an unsolicited FLAGS update
                        yield uid, message_view(data, needs)
                    del data

    def _body_batches(self, uids: Sequence[int]) -> list[list[int]]:
        """UIDs in batches of at most BODY_BATCH_BYTES, by the sizes the server reports first."""
        sizes: dict[int, int] = {}
        for batch in batched(uids, HEADER_BATCH):
            for uid, data in self._fetch_batch(batch, ["UID", "RFC822.SIZE"]).items():
                if b"RFC822.SIZE" in data:
                    sizes[uid] = int(data[b"RFC822.SIZE"])
        return size_batches([(uid, sizes[uid]) for uid in uids if uid in sizes], BODY_BATCH_BYTES, BODY_BATCH)

    def _fetch_batch(self, batch: Sequence[int], items: list[str]) -> dict[int, dict[bytes, Any]]:
        found: dict[int, dict[bytes, Any]] = {}
        for uid_text in self._uid_sets(batch):
            found.update(self._read(f"UID FETCH {uid_text} ({' '.join(items)})",
                                    lambda client, uid_text=uid_text: _uid_fetch(client, uid_text, items)))
        return found

    def fetch_raw(self, uid: int) -> bytes | None:
        found = self._read(f"UID FETCH {uid} (BODY.PEEK[])",
                           lambda client: _uid_fetch(client, str(uid), ["BODY.PEEK[]"]))
        return body_section(found.get(uid, {}), b"BODY[]")

    # ------------------------------------------------------------ changing messages

    def add_flags(self, uids: Sequence[int], flags: Sequence[str]) -> None:
        self._store(uids, flags, add=True)

    def remove_flags(self, uids: Sequence[int], flags: Sequence[str]) -> None:
        self._store(uids, flags, add=False)

    def _store(self, uids: Sequence[int], flags: Sequence[str], *, add: bool) -> None:
        if not uids or not flags:
            return
        self._require_writable("UID STORE")
        for uid_text in self._uid_sets(uids):
            def store(client: IMAPClient, uid_text: str = uid_text) -> None:
                (client.add_flags if add else client.remove_flags)(uid_text, list(flags), silent=True)

            self._change(f"UID STORE {uid_text} {'+' if add else '-'}FLAGS.SILENT ({' '.join(flags)})", store)

    def _require_writable(self, command: str) -> None:
        # Dovecot answers a STORE in an EXAMINEd folder with "OK Store ignored": a run
        # that opened its folder read-only would report changes it never made.
        if self._selected is not None and self._selected[1]:
            raise BackendError("the folder is open read-only (EXAMINE); nothing was changed",
                               folder=self._selected[0], command=command)

    def copy(self, uids: Sequence[int], folder: str) -> CopyResult:
        return self._transfer("COPY", uids, folder)

    def move(self, uids: Sequence[int], folder: str) -> CopyResult:
        """MOVE when the server has it; otherwise COPY, then delete exactly the originals."""
        self._require_writable("UID MOVE")
        if "MOVE" in self.capabilities:
            return self._transfer("MOVE", uids, folder)
        result = self._transfer("COPY", uids, folder)
        self.delete(uids)
        return result

    def _transfer(self, verb: Literal["COPY", "MOVE"], uids: Sequence[int], folder: str) -> CopyResult:
        results = []
        server = self._server_name(folder)
        for uid_text in self._uid_sets(uids):
            def transfer(client: IMAPClient, uid_text: str = uid_text) -> CopyResult:
                send = client.move if verb == "MOVE" else client.copy
                return _with_copyuid(client, lambda: send(uid_text, server))

            results.append(self._change(f"UID {verb} {uid_text} {quoted_string(server)}", transfer, folder))
        return merge_copy_results(results)

    def delete(self, uids: Sequence[int]) -> None:
        """Flag exactly these UIDs ``\\Deleted`` and expunge exactly them, never other clients' deletions."""
        if not uids:
            return
        self._store(uids, ["\\Deleted"], add=True)
        if "UIDPLUS" not in self.capabilities:
            self.notices.append(
                f"{len(set(uids))} message(s) in {self._folder()!r} are flagged \\Deleted but not expunged: "
                f"{self.host} lacks UIDPLUS, and a plain EXPUNGE would also remove other clients' deleted mail"
            )
            return
        for uid_text in self._uid_sets(uids):
            self._change(f"UID EXPUNGE {uid_text}", lambda client, uid_text=uid_text: client.uid_expunge(uid_text))

    def append(self, folder: str, message: bytes, flags: Sequence[str]) -> None:
        server = self._server_name(folder)
        self._change(f"APPEND {quoted_string(server)} ({' '.join(flags)}) {{{len(message)}}}",
                     lambda client: client.append(server, message, flags=tuple(flags)), folder)


# ---------------------------------------------------------------- errors


class _ErrorMap:
    """Turn what imapclient, imaplib, socket and ssl raise into ``BackendError``s."""

    def __init__(self, mailbox: ImapMailbox, command: str, folder: str | None, *, connecting: bool = False):
        self.mailbox = mailbox
        words = command.split()
        self.command = " ".join(words[:2] if words[0] == "UID" else words[:1])
        self.folder = folder
        self.connecting = connecting

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        if exc is None or isinstance(exc, BackendError) or not isinstance(exc, Exception):
            return False
        error = self.translate(exc)
        if isinstance(error, ConnectionLost):
            self.mailbox._lost()  # nothing more can be sent on this session
        raise error from exc

    def translate(self, exc: Exception) -> BackendError:
        where = f"{self.mailbox.host}:{self.mailbox.port}"
        if isinstance(exc, ssl.SSLCertVerificationError):
            return ConfigurationError(f"certificate verify failed for host {self.mailbox.host}: {exc.verify_message}; "
                                "if the server uses a private CA or a self-signed certificate, set ca_file in the account")
        if self.connecting:
            return self._connect_error(exc, where)
        if isinstance(exc, _DROPPED):
            reason = "no answer in time" if isinstance(exc, socket.timeout) else (str(exc) or type(exc).__name__)
            return ConnectionLost(f"connection to {where} lost: {reason}", folder=self.folder, command=self.command)
        text = redact(server_text(exc))
        if "[TRYCREATE]" in text.upper():  # RFC 3501 §6.4.7: the destination doesn't exist
            return MissingFolder(f"{where} refused: {text}", folder=self.folder, command=self.command)
        if "[EXPUNGEISSUED]" in text.upper():  # another session expunged some of the UIDs we named
            return MessagesVanished(f"{where} refused: {text}", folder=self.folder, command=self.command)
        if self.command == "CREATE" and (_refuses_name(text) or response_code(text) not in TRANSIENT_CODES):
            return FolderRefused(f"{where} can't create this folder: {text}; choose another name in the rules",
                                 folder=self.folder, command=self.command)
        return BackendError(f"{where} refused: {text}", folder=self.folder, command=self.command)

    def _connect_error(self, exc: Exception, where: str) -> BackendError:
        from imapclient.exceptions import LoginError

        if isinstance(exc, LoginError) and isinstance(exc.__context__, _DROPPED):
            # imapclient wraps a connection dropped during LOGIN in LoginError too
            return BackendError(f"connection to {where} lost during login: {redact(server_text(exc.__context__))}")
        if isinstance(exc, LoginError):
            text = redact(server_text(exc))
            return login_error(f"login failed for user {self.mailbox.username} at {where}: {text}", text)
        if isinstance(exc, ssl.SSLError) and exc.reason == "WRONG_VERSION_NUMBER":
            return ConfigurationError(f"TLS handshake with {where} failed: the port does not speak TLS; "
                                      "check the account's port and tls (ssl or starttls)")
        if isinstance(exc, ssl.SSLError):
            return BackendError(f"TLS handshake with {where} failed: {exc.reason or exc}")
        if isinstance(exc, OSError):
            return BackendError(f"cannot connect to {where}: {exc.strerror or exc}")
        return BackendError(f"cannot log in to {where}: {redact(server_text(exc))}")


def login_error(message: str, text: str) -> BackendError:
    """A refused LOGIN: permanent (the password or account is wrong), unless the server
    says it is only unavailable for now.

    >>> type(login_error("", "[AUTHENTICATIONFAILED] Authentication failed.")).__name__
    'AuthenticationFailed'
    >>> type(login_error("", "[UNAVAILABLE] Temporary authentication failure.")).__name__
    'BackendError'
    >>> type(login_error("", "[PRIVACYREQUIRED] Plaintext authentication disallowed")).__name__
    'ConfigurationError'
    """
    code = response_code(text)
    if code in TRANSIENT_CODES:
        return BackendError(message)
    if code == "PRIVACYREQUIRED":
        return ConfigurationError(message + "; the server wants TLS (tls: ssl or starttls)")
    return AuthenticationFailed(message)


def response_code(text: str) -> str | None:
    """The response code (RFC 3501 §7.1, RFC 5530) opening a server's answer, upper-cased.

    >>> response_code("[CANNOT] Invalid mailbox name: Begins with '~'"), response_code("NO [noperm] Permission denied")
    ('CANNOT', 'NOPERM')
    >>> response_code("Mailbox doesn't exist: Foo") is None
    True
    """
    found = re.match(r"(?:(?:NO|BAD)\s+)?\[([A-Za-z0-9-]+)", text.strip())
    return found.group(1).upper() if found else None


def server_text(exc: BaseException) -> str:
    """The server's words from an imaplib/imapclient error, without the library's framing.

    >>> server_text(Exception("select failed: Mailbox doesn't exist: Foo (0.001 + 0.000 secs)."))
    "Mailbox doesn't exist: Foo"
    >>> server_text(Exception("SEARCH command error: BAD [b'Error in IMAP command UID SEARCH: Unknown argument']"))
    'BAD Error in IMAP command UID SEARCH: Unknown argument'
    >>> server_text(Exception("b'[AUTHENTICATIONFAILED] Authentication failed.'"))
    '[AUTHENTICATIONFAILED] Authentication failed.'
    """
    text = str(exc)
    text = re.sub(r"^\w+ (?:failed|command error): ", "", text)
    text = re.sub(r"^(BAD|NO) \[b'(.*)'\]$", r"\1 \2", text)
    text = re.sub(r"^b'(.*)'$", r"\1", text)
    return re.sub(r"\s*\([\d.+ ]+secs\)\.?$", "", text).strip()


# ---------------------------------------------------------------- pure helpers


def _refuses_name(text: str) -> bool:
    """A CREATE refused for the name itself, which no retry changes: RFC 5530's [CANNOT],
    or the wording of servers that don't send response codes (Cyrus: "Invalid mailbox name").

    >>> _refuses_name("[CANNOT] Character not allowed in mailbox name: '.'"), _refuses_name("[SERVERBUG] oops")
    (True, False)
    """
    upper = text.upper()
    return "[CANNOT]" in upper or "INVALID MAILBOX NAME" in upper


def refuses_charset(exc: BackendError) -> bool:
    """A SEARCH with CHARSET UTF-8 refused with [BADCHARSET] (RFC 3501 §6.4.4), or as BAD syntax."""
    if isinstance(exc, ConnectionLost) or exc.__cause__ is None:
        return False
    text = server_text(exc.__cause__)
    return "BADCHARSET" in text.upper() or text.startswith("BAD ")


def size_batches(sized: Sequence[tuple[int, int]], max_bytes: int = BODY_BATCH_BYTES,
                 max_count: int = BODY_BATCH) -> list[list[int]]:
    """(uid, size) pairs in order, cut into batches of at most ``max_bytes`` and ``max_count``.

    A message larger than ``max_bytes`` is a batch of its own; UIDs keep their order.

    >>> size_batches([(1, 10), (2, 10), (3, 25), (4, 40), (5, 1)], max_bytes=30)
    [[1, 2], [3], [4], [5]]
    >>> size_batches([(1, 1), (2, 1), (3, 1)], max_bytes=30, max_count=2)
    [[1, 2], [3]]
    """
    batches: list[list[int]] = []
    current: list[int] = []
    total = 0
    for uid, size in sized:
        if current and (total + size > max_bytes or len(current) >= max_count):
            batches.append(current)
            current, total = [], 0
        current.append(uid)
        total += size
    if current:
        batches.append(current)
    return batches


# ---------------------------------------------------------------- below imapclient's public API


def _list_all(client: IMAPClient, *, special_use: bool) -> list[tuple[Any, Any, str]]:
    """``LIST "" "*"``, with ``RETURN (SPECIAL-USE)`` when asked (imapclient has no RETURN)."""
    if special_use:
        try:
            typ, data = client._imap._simple_command("LIST", '""', '"*"', "RETURN", "(SPECIAL-USE)")
        except imaplib.IMAP4.abort:
            raise
        except imaplib.IMAP4.error:  # BAD: the server can't parse RETURN after all
            typ = "BAD"
        if typ == "OK":
            typ, data = client._imap._untagged_response(typ, data, "LIST")
            return list(client._proc_folder_list(data))
        client._imap.untagged_responses.pop("LIST", None)  # refused: many servers show the uses anyway
    return list(client.list_folders())


def _create(client: IMAPClient, folder: str) -> None:
    try:
        client.create_folder(folder)
    except imaplib.IMAP4.error as exc:
        if "ALREADYEXISTS" not in str(exc).upper():  # another client was quicker: fine
            raise


def _uid_search(client: IMAPClient, args: list[bytes]) -> list[int]:
    from imapclient.response_parser import parse_message_list

    # Our own tokens, not imapclient's encoder: see the module docstring.
    data = client._raw_command_untagged(b"SEARCH", args)
    return list(parse_message_list(data))


def _uid_fetch(client: IMAPClient, uid_set: str, items: Sequence[str]) -> dict[int, dict[bytes, Any]]:
    from mailrules.backends.fetchparse import parse_fetch

    # Leftover unsolicited FETCH lines (flag changes by other clients) would mix in otherwise.
    client._imap.untagged_responses.pop("FETCH", None)
    data = client._raw_command_untagged(b"FETCH", [uid_set.encode(), f"({' '.join(items)})".encode()])
    return parse_fetch(data, general_fetch_item)


def general_fetch_item(response: list[bytes | tuple[bytes, bytes]]) -> tuple[int, dict[bytes, Any]] | None:
    """One FETCH response of any shape, read by imapclient's general parser."""
    from imapclient.response_parser import parse_fetch_response

    found = parse_fetch_response(response, normalise_times=False, uid_is_key=True)
    return next(iter(found.items()), None)


def _with_copyuid(client: IMAPClient, call: Callable[[], object]) -> CopyResult:
    """Run COPY/MOVE and collect its COPYUID codes.

    imaplib files every ``[CODE data]`` it reads, tagged (COPY) or untagged (MOVE sends
    it before the EXPUNGEs, RFC 6851 §4.3), under ``untagged_responses[CODE]``.
    """
    responses = client._imap.untagged_responses
    responses.pop("COPYUID", None)
    call()
    return parse_copyuid(responses.pop("COPYUID", []))


def _cut(client: IMAPClient) -> None:
    """Wake whatever thread waits on this connection: after a signal nothing more is read from it.

    ``shutdown``, not ``close``: the file descriptor stays valid for the thread still using it.
    """
    client.socket().shutdown(socket.SHUT_RDWR)


def _shutdown(client: IMAPClient) -> None:
    try:
        client.shutdown()
    except Exception:  # closing a socket that is already gone
        pass
