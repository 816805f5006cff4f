"""A loopback TCP proxy that breaks IMAP sessions on purpose, between a client and a real server.

Client commands are numbered across every connection the proxy carries (reconnects
included), so "the k-th command" means the same thing in every run of a test.  A
``Cut`` drops the connection at that command in one of three ways:

``before``        the command never reaches the server;
``after``         the server carries it out, but its tagged answer never reaches the client;
``mid_response``  the client receives only part of the server's answer.

Only one cut fires per proxy: a client that reconnects afterwards is served normally,
unless the cut says the server stays down.
The proxy can also slow every answer down (``response_delay``) or stop a command in its
tracks until a test has done something (``before_command``), to let other clients
interfere at a known point of a run.  Everything the clients sent is kept
(``client_bytes``) for tests that check what went over the wire.

The IMAP framing is followed just enough to know where commands and tagged answers start:
lines end in CRLF, and a line ending in ``{n}`` / ``{n+}`` / ``~{n}`` is followed by n
bytes of literal data that may contain anything, including lines that look like commands.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

Variant = Literal["before", "after", "mid_response"]
VARIANTS: tuple[Variant, ...] = ("before", "after", "mid_response")

_LITERAL = re.compile(rb"~?\{(\d+)\+?\}\r\n$")
_COMMAND = re.compile(rb"^([A-Za-z0-9._-]+) ([A-Za-z]+)(?: ([A-Za-z]+))?")
_CHUNK = 65536


@dataclass(frozen=True, slots=True)
class Cut:
    """Drop the connection at the ``command``-th client command (1-based, counted over all connections).

    With ``stay_down`` every later connection is closed at once, as if the server had
    gone away: the client can't finish its work by reconnecting.
    """

    command: int
    variant: Variant
    stay_down: bool = False


@dataclass(frozen=True, slots=True)
class Command:
    """One client command as the proxy saw it."""

    number: int
    connection: int
    tag: bytes
    name: str  # upper case; "UID MOVE" for UID commands
    line: bytes  # the first line, without any literal that follows


@dataclass(frozen=True, slots=True)
class Piece:
    """A slice of one direction of the stream.

    ``starts_unit`` is true for a line that begins a new command (client side) or a new
    response (server side), false for literal data and for the rest of a line after a literal.
    """

    data: bytes
    starts_unit: bool


class ImapSplitter:
    r"""Cut a byte stream into lines and literal payloads, however the bytes arrive.

    >>> s = ImapSplitter()
    >>> [(p.data, p.starts_unit) for p in s.feed(b"a1 APPEND INBOX {5}\r\nb1 X\r")]
    [(b'a1 APPEND INBOX {5}\r\n', True), (b'b1 X\r', False)]
    >>> [(p.data, p.starts_unit) for p in s.feed(b"\r\na2 NOOP\r\n")]
    [(b'\r\n', False), (b'a2 NOOP\r\n', True)]
    """

    def __init__(self) -> None:
        self._pending = b""
        self._literal_left = 0
        self._at_start = True

    def feed(self, data: bytes) -> list[Piece]:
        pieces: list[Piece] = []
        data = self._pending + data
        self._pending = b""
        while data:
            if self._literal_left:
                payload, data = data[: self._literal_left], data[self._literal_left:]
                self._literal_left -= len(payload)
                pieces.append(Piece(payload, False))
                continue
            end = data.find(b"\r\n")
            if end < 0:
                self._pending = data
                break
            line, data = data[: end + 2], data[end + 2:]
            pieces.append(Piece(line, self._at_start))
            literal = _LITERAL.search(line)
            self._literal_left = int(literal.group(1)) if literal else 0
            self._at_start = literal is None
        return pieces


def command_of(line: bytes) -> tuple[bytes, str] | None:
    """``(tag, NAME)`` of a client command line; None for IDLE's ``DONE`` or an AUTHENTICATE answer.

    >>> command_of(b"A7 uid store 3 +FLAGS (\\\\Seen)\\r\\n")
    (b'A7', 'UID STORE')
    >>> command_of(b"DONE\\r\\n") is None
    True
    """
    match = _COMMAND.match(line)
    if not match:
        return None
    first, second = match.group(2).upper().decode(), (match.group(3) or b"").upper().decode()
    return match.group(1), f"UID {second}" if first == "UID" and second else first


def is_tagged(piece: Piece, tag: bytes) -> bool:
    return piece.starts_unit and piece.data.startswith(tag + b" ")


def is_continuation(piece: Piece) -> bool:
    return piece.starts_unit and piece.data.startswith(b"+")


def _ack_at_once(sock: socket.socket) -> None:
    """Acknowledge received data at once instead of up to 40 ms later.

    Dovecot writes an untagged answer and the tagged one separately; with Nagle on its side
    the second waits for our ACK of the first, which Linux delays unless asked (and the
    request has to be renewed after every read).
    """
    quickack = getattr(socket, "TCP_QUICKACK", None)
    if quickack is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class FaultProxy:
    """Listen on 127.0.0.1 (``host``/``port``) and relay every connection to ``upstream``."""

    def __init__(self, upstream_host: str, upstream_port: int, *, cut: Cut | None = None,
                 response_delay: float = 0.0, before_command: Callable[[Command], None] | None = None):
        self.upstream = (upstream_host, upstream_port)
        self.cut = cut
        self.response_delay = response_delay
        self.before_command = before_command
        self.host = "127.0.0.1"
        self.port = 0
        self.commands: list[Command] = []
        self.cut_fired = threading.Event()
        self._sent: list[bytes] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._connections: list[_Connection] = []
        self._stopping = threading.Event()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> FaultProxy:
        listener = socket.create_server((self.host, 0))
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept_loop, name="faultproxy-accept", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            _close(self._listener)
        for connection in list(self._connections):
            connection.close()

    def client_bytes(self) -> bytes:
        """Everything any client sent, in arrival order, as it went over the wire (TLS records after
        STARTTLS; clear-text passwords otherwise: keep it in the test)."""
        with self._lock:
            return b"".join(self._sent)

    def command_names(self) -> list[str]:
        with self._lock:
            return [command.name for command in self.commands]

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.cut is not None and self.cut.stay_down and self.cut_fired.is_set():
                _close(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=30)
            except OSError:
                _close(client)
                continue
            server.settimeout(None)
            for sock in (client, server):  # one line per send: without this, Nagle + delayed ACK add 40 ms a command
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = _Connection(self, len(self._connections) + 1, client, server)
            self._connections.append(connection)
            connection.start()

    def _register(self, connection: int, tag: bytes, name: str, line: bytes) -> tuple[Command, bool]:
        """Number a command; say whether the cut is due at it (at most once per proxy)."""
        with self._lock:
            command = Command(len(self.commands) + 1, connection, tag, name, line)
            self.commands.append(command)
            due = self.cut is not None and self.cut.command == command.number and not self.cut_fired.is_set()
            if due:
                self.cut_fired.set()
            return command, due

    def _record(self, data: bytes) -> None:
        with self._lock:
            self._sent.append(data)


class _Connection:
    """One client connection and its server connection, relayed by two threads."""

    def __init__(self, proxy: FaultProxy, number: int, client: socket.socket, server: socket.socket):
        self.proxy = proxy
        self.number = number
        self.client = client
        self.server = server
        self.closed = threading.Event()
        self._watched_tag: bytes | None = None  # the command whose answer is to be cut
        self._starttls_tag: bytes | None = None  # once set, the connection turns into TLS
        self._watch_lock = threading.Lock()

    def start(self) -> None:
        for target, name in ((self._client_to_server, "c2s"), (self._server_to_client, "s2c")):
            threading.Thread(target=target, name=f"faultproxy-{self.number}-{name}", daemon=True).start()

    def close(self) -> None:
        self.closed.set()
        _close(self.client)
        _close(self.server)

    def _chunks(self, sock: socket.socket) -> Iterator[bytes]:
        while not self.closed.is_set():
            try:
                data = sock.recv(_CHUNK)
            except OSError:
                data = b""
            if not data:
                self.close()
                return
            _ack_at_once(sock)
            yield data

    # ---------------------------------------------------------------- client -> server

    def _client_to_server(self) -> None:
        splitter = ImapSplitter()
        for data in self._chunks(self.client):
            if self._starttls_tag is not None:  # a TLS stream now: relayed unread, commands no longer counted
                self.proxy._record(data)
                if not self._send(self.server, data):
                    break
                continue
            for piece in splitter.feed(data):
                if not self._forward_command_piece(piece):
                    self.close()
                    return

    def _forward_command_piece(self, piece: Piece) -> bool:
        """Relay one client piece; False when the cut says the connection ends here."""
        parsed = command_of(piece.data) if piece.starts_unit else None
        if parsed is not None:
            command, due = self.proxy._register(self.number, parsed[0], parsed[1], piece.data)
            if self.proxy.before_command is not None:
                self.proxy.before_command(command)
            if due:
                assert self.proxy.cut is not None
                if self.proxy.cut.variant == "before":
                    return False
                with self._watch_lock:
                    self._watched_tag = command.tag
            if command.name == "STARTTLS":
                self._starttls_tag = command.tag
        self.proxy._record(piece.data)
        return self._send(self.server, piece.data)

    # ---------------------------------------------------------------- server -> client

    def _server_to_client(self) -> None:
        splitter = ImapSplitter()
        held: list[bytes] = []  # the watched command's answer, kept back for a mid-response cut
        encrypted = False
        for data in self._chunks(self.server):
            if encrypted:
                if not self._send(self.client, data):
                    break
                continue
            for piece in splitter.feed(data):
                if not self._relay_answer_piece(piece, held):
                    self.close()
                    return
                if self._starttls_tag is not None and is_tagged(piece, self._starttls_tag):
                    encrypted = True  # the answer to STARTTLS is the last clear text; the handshake follows

    def _relay_answer_piece(self, piece: Piece, held: list[bytes]) -> bool:
        with self._watch_lock:
            watched = self._watched_tag
        if watched is not None and is_tagged(piece, watched):
            assert self.proxy.cut is not None
            if self.proxy.cut.variant == "mid_response":
                answer = b"".join(held) + piece.data
                self._send(self.client, answer[: max(1, len(answer) // 2)])
            return False
        if watched is not None and self.proxy.cut is not None and self.proxy.cut.variant == "mid_response" \
                and not is_continuation(piece):
            held.append(piece.data)  # a literal's "+ go ahead" must pass, or the client would wait forever
            return True
        if piece.starts_unit and not piece.data.startswith((b"*", b"+")) and self.proxy.response_delay:
            time.sleep(self.proxy.response_delay)
        return self._send(self.client, piece.data)

    def _send(self, sock: socket.socket, data: bytes) -> bool:
        try:
            sock.sendall(data)
        except OSError:
            return False
        return True


class Hold:
    """A ``before_command`` hook that stops the first command ``wanted`` accepts until ``release()``.

    ``reached`` is set when that command arrives; the other connections keep flowing.
    """

    def __init__(self, wanted: Callable[[Command], bool], *, timeout: float = 60.0):
        self.wanted = wanted
        self.timeout = timeout
        self.reached = threading.Event()
        self.held: Command | None = None
        self._released = threading.Event()

    def __call__(self, command: Command) -> None:
        if self.reached.is_set() or not self.wanted(command):
            return
        self.held = command
        self.reached.set()
        self._released.wait(self.timeout)

    def release(self) -> None:
        self._released.set()


def named(*names: str) -> Callable[[Command], bool]:
    """A predicate for ``Hold``: the command is one of ``names`` (``"SELECT"``, ``"UID EXPUNGE"`` …)."""
    wanted = {name.upper() for name in names}
    return lambda command: command.name in wanted
