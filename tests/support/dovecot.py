"""A private Dovecot for tests: its own config, ports, users and Maildirs in a temp dir.

Nothing here touches the system Dovecot: the instance has its own base_dir,
state_dir and instance_name and listens on 127.0.0.1 only.  Users are stored
in passwd-files that Dovecot reads at login, so adding one needs no restart.
Every IMAP session's client traffic lands in ``rawlog/<user>/`` so a test can
count the commands a piece of code sent.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from imapclient import IMAPClient
from imapclient.imap_utf7 import encode as encode_utf7

DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "doveadm"
SIEVE_TEST = "sieve-test"
MAIL_UID = MAIL_GID = 65534  # nobody/nogroup: Dovecot refuses to access mail as root
MAILDIR_FLAGS = "DFRST"  # Maildir letters: Draft Flagged Replied(\Answered) Seen Trashed(\Deleted)
START_TIMEOUT = 10.0
DEFAULT_SPECIAL_USE = {"Trash": "\\Trash", "Sent": "\\Sent"}


def missing_reason() -> str | None:
    """Why a private Dovecot can't run here, or None when it can: every file the tests execute
    (dovecot-core without dovecot-imapd has the master but not the IMAP binary it starts)."""
    if not os.path.exists(DOVECOT):
        return f"{DOVECOT} not found: install Debian's dovecot-imapd (and dovecot-sieve)"
    from tests.support.requirements import missing_reason as requirements_missing

    return requirements_missing("dovecot")


def require_dovecot() -> None:
    """Skip the calling test when Dovecot is missing, but fail it when ``CI`` is set:
    CI must never pass by skipping the server tests."""
    reason = missing_reason()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason}. CI must install it; the server tests may not be skipped there.", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class User:
    """A mail account on a test server; ``maildir`` is its Maildir++ root (INBOX)."""

    username: str
    password: str
    host: str
    port: int
    maildir: Path
    rawlog_dir: Path
    tls_port: int | None = None


def maildir_folder(root: Path, folder: str) -> Path:
    """Where Maildir++ keeps ``folder`` (``/``-separated) under ``root``: ``Lists/lkml`` -> ``.Lists.lkml``."""
    if folder.upper() == "INBOX":
        return root
    parts = folder.split("/")
    if any(not part or "." in part for part in parts):
        raise ValueError(f"folder name {folder!r} can't be stored as a Maildir++ folder here")
    return root / ("." + ".".join(encode_utf7(part).decode("ascii") for part in parts))


def _chown_tree(path: Path, stop: Path) -> None:
    """Give ``path`` and its parents up to (excluding) ``stop`` to the mail user."""
    while path != stop and stop in path.parents:
        os.chown(path, MAIL_UID, MAIL_GID)
        path = path.parent


def _make_maildir(path: Path, stop: Path) -> None:
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
        _chown_tree(path / sub, stop)
    if path != stop and path.name.startswith("."):
        marker = path / "maildirfolder"
        marker.touch()
        os.chown(marker, MAIL_UID, MAIL_GID)


class Dovecot:
    """One private Dovecot instance rooted in a fresh temp dir.

    ``separator`` and ``prefix`` shape the personal namespace (``"."`` and ``"INBOX."``
    give Cyrus's default layout); ``special_use`` maps folder names (relative to the
    prefix) to their RFC 6154 attribute, ``{"Deleted Items": "\\Trash"}``.
    ``capability`` replaces the post-login CAPABILITY list (``imap_capability``), e.g. to
    test a server without MOVE.  ``tls`` adds an imaps listener and STARTTLS with a
    self-signed certificate for 127.0.0.1 (``cert_path`` is its CA file).  ``extra_config``
    is appended to the generated configuration (later settings override earlier ones;
    another ``passdb`` block is consulted after the passwd-file one).
    """

    _serial = itertools.count(1)
    _mail_serial = itertools.count(1)

    def __init__(self, *, capability: str | None = None, tls: bool = False, separator: str = "/",
                 prefix: str = "", special_use: dict[str, str] | None = None, extra_config: str = ""):
        self.capability = capability
        self.tls = tls
        self.separator = separator
        self.prefix = prefix
        self.special_use = dict(DEFAULT_SPECIAL_USE if special_use is None else special_use)
        self.extra_config = extra_config
        # Not under pytest's tmp dir: that is 0700 root and the mail user must traverse it.
        self.root = Path(tempfile.mkdtemp(prefix="mailrules-dovecot-"))
        self.root.chmod(0o755)
        self.host = "127.0.0.1"
        self.port = 0
        self.tls_port: int | None = None
        self.conf_path = self.root / "dovecot.conf"
        self.log_path = self.root / "dovecot.log"
        self.users_dir = self.root / "users"
        self.cert_path = self.root / "tls" / "cert.pem"
        self.instance_name = f"mailrules-test-{os.getpid()}-{next(self._serial)}"
        self._users: dict[str, User] = {}
        atexit.register(self.stop)  # even if a test run is interrupted

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> Dovecot:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Dovecot:
        """Start the server and wait for its greeting; ports taken meanwhile are retried."""
        for sub in ("run", "state", "mail", "rawlog", "users"):
            (self.root / sub).mkdir(exist_ok=True)
        os.chown(self.root / "mail", MAIL_UID, MAIL_GID)
        if self.tls and not self.cert_path.exists():
            self._make_certificate()
        for _ in range(3):  # another process may take a free port before Dovecot binds it
            self.port = free_port()
            self.tls_port = free_port() if self.tls else None
            self.conf_path.write_text(self.config_text())
            self.log_path.write_text("")
            if self._launch():
                return self
            log = self.log_tail()
            pid = self._master_pid()
            if pid is not None:
                self._terminate(pid)
        self.stop()
        raise RuntimeError(f"Dovecot did not start; its log says:\n{log}")

    def _launch(self) -> bool:
        proc = subprocess.run(
            [DOVECOT, "-c", str(self.conf_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # the master daemonizes but keeps these open
            stderr=subprocess.DEVNULL,
            timeout=30,
        )
        if proc.returncode != 0:
            return False
        # Dovecot delays every login from an IP after a failed one (up to 15 s), and tests
        # fail logins on purpose.  The auth process connects to this socket when it
        # starts, at the first login; finding it missing, it keeps no penalties.
        (self.root / "run" / "anvil-auth-penalty").unlink(missing_ok=True)
        return self._await_greeting()

    def _await_greeting(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                with socket.create_connection((self.host, self.port), timeout=2) as sock:
                    if sock.recv(200).startswith(b"* OK"):
                        return True
            if self._master_pid() is None and "Fatal" in self.log_tail():
                return False
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        """Stop the master and delete everything the instance wrote; safe to call twice."""
        atexit.unregister(self.stop)
        pid = self._master_pid()
        if pid is not None:
            self._terminate(pid)
        shutil.rmtree(self.root, ignore_errors=True)

    def _terminate(self, pid: int) -> None:
        # SIGTERM to the master alone (what `doveadm stop` does) makes it wait a second
        # or more for its children.
        stop_process_group(pid, "Dovecot master")

    def _master_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            pid = int((self.root / "run" / "master.pid").read_text().strip())
            if _alive(pid):
                return pid
        return None

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    # ------------------------------------------------------------ configuration

    def config_text(self) -> str:
        root = self.root
        imaps = f"address = {self.host}\n    port = {self.tls_port}\n    ssl = yes" if self.tls else "port = 0"
        if self.tls:
            ssl = f"ssl = yes\nssl_cert = <{self.cert_path}\nssl_key = <{root / 'tls' / 'key.pem'}\n"
        else:
            ssl = "ssl = no\n"
        capability = f"  imap_capability = {self.capability}\n" if self.capability is not None else ""
        return f"""\
base_dir = {root / 'run'}
state_dir = {root / 'state'}
instance_name = {self.instance_name}
log_path = {self.log_path}
protocols = imap
listen = {self.host}
{ssl}disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{root / 'mail'}/%u
# One passwd-file per user: Dovecot re-reads a changed passwd-file at most once a
# second, so a user added right after a login would be unknown for up to a second.
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.users_dir}/%u
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.users_dir}/%u
}}
namespace inbox {{
  inbox = yes
  separator = {self.separator}
  prefix = {self.prefix}
{self._special_use_config()}}}
protocol imap {{
  rawlog_dir = {root / 'rawlog'}/%u
{capability}}}
service imap-login {{
  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    {imaps}
  }}
}}
{self.extra_config}"""

    def _special_use_config(self) -> str:
        return "".join(f'  mailbox "{name}" {{\n    auto = no\n    special_use = {use}\n  }}\n'
                       for name, use in self.special_use.items())

    def _make_certificate(self) -> None:
        self.cert_path.parent.mkdir(exist_ok=True)
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
             "-keyout", str(self.cert_path.parent / "key.pem"), "-out", str(self.cert_path)],
            check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60,
        )

    # ------------------------------------------------------------ users and mail

    def add_user(self, name: str | None = None, password: str = "secret") -> User:
        """A fresh account with an empty INBOX (a generated name unless ``name`` is given)."""
        name = name or f"user{next(self._serial)}"
        if not re.fullmatch(r"[A-Za-z0-9._-]+", name) or name in self._users:
            raise ValueError(f"user name {name!r} is taken or can't be a passwd-file entry and a directory")
        maildir = self.root / "mail" / name
        _make_maildir(maildir, self.root / "mail")
        rawlog = self.root / "rawlog" / name
        rawlog.mkdir(parents=True)
        os.chown(rawlog, MAIL_UID, MAIL_GID)
        entry = self.users_dir / name
        entry.write_text(f"{name}:{{PLAIN}}{password}:{MAIL_UID}:{MAIL_GID}::{maildir}::\n")
        entry.chmod(0o644)
        user = User(name, password, self.host, self.port, maildir, rawlog, self.tls_port)
        self._users[name] = user
        return user

    def deliver(self, user: User, raw: bytes, folder: str = "INBOX", flags: str = "",
                internaldate: datetime | None = None) -> Path:
        """Drop a message straight into the user's Maildir (no IMAP); returns its file.

        ``flags`` are Maildir letters (``S`` seen, ``F`` flagged, ``R`` answered, ``T``
        deleted, ``D`` draft).  The file's mtime is the message's INTERNALDATE.
        """
        if set(flags) - set(MAILDIR_FLAGS):
            raise ValueError(f"Maildir flags are letters from {MAILDIR_FLAGS!r}, not {flags!r}")
        box = maildir_folder(user.maildir, folder)
        _make_maildir(box, user.maildir)
        stem = f"{int(time.time())}.M{next(self._mail_serial)}P{os.getpid()}.mailrules-test"
        path = box / "cur" / f"{stem}:2,{''.join(sorted(set(flags)))}" if flags else box / "new" / stem
        path.write_bytes(raw)
        os.chown(path, MAIL_UID, MAIL_GID)
        if internaldate is not None:
            stamp = internaldate.timestamp()
            os.utime(path, (stamp, stamp))
        return path

    @contextlib.contextmanager
    def client(self, user: User) -> Iterator[IMAPClient]:
        """An independent IMAP session for the user (plays "another mail client")."""
        imap = IMAPClient(self.host, port=self.port, ssl=False, timeout=30)
        try:
            imap.login(user.username, user.password)
            yield imap
        finally:
            with contextlib.suppress(Exception):
                imap.logout()

    def append(self, user: User, raw: bytes, folder: str = "INBOX", flags: tuple[str, ...] = (),
               internaldate: datetime | None = None) -> int | None:
        """Store a message over IMAP APPEND, creating the folder if needed; returns its UID."""
        with self.client(user) as imap:
            if not imap.folder_exists(folder):
                imap.create_folder(folder)
            response = imap.append(folder, raw, flags=flags, msg_time=internaldate)
        match = re.search(rb"\[APPENDUID \d+ (\d+)\]", response or b"")
        return int(match.group(1)) if match else None

    def capabilities(self, user: User) -> list[str]:
        """The post-login CAPABILITY list the server advertises to ``user``."""
        with self.client(user) as imap:
            return [cap.decode() for cap in imap.capabilities()]

    def kick(self, user: User) -> None:
        """Drop every IMAP session of ``user`` and wait until they are gone (connection-loss tests)."""
        self._doveadm("kick", user.username)
        deadline = time.monotonic() + START_TIMEOUT
        while user.username in self._doveadm("who", "-1", user.username):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{user.username}'s sessions survived doveadm kick")
            time.sleep(0.02)

    def _doveadm(self, *args: str) -> str:
        proc = subprocess.run([DOVEADM, "-c", str(self.conf_path), *args], check=True, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=30)
        return proc.stdout

    # ------------------------------------------------------------ observing clients

    def rawlog_commands(self, user: User) -> list[str]:
        """Names of the commands the user's sessions sent after login, in order (``UID FETCH`` …)."""
        commands: list[str] = []
        for path in sorted(user.rawlog_dir.glob("*.in")):
            commands.extend(parse_rawlog_commands(strip_rawlog_timestamps(path.read_bytes())))
        return commands

    def count_commands(self, user: User) -> int:
        return len(self.rawlog_commands(user))

    def clear_rawlog(self, user: User) -> None:
        """Forget the traffic so far; close sessions first (an open one keeps its removed file)."""
        for path in user.rawlog_dir.iterdir():
            path.unlink()

    # ------------------------------------------------------------ Pigeonhole

    def sieve_test(self, script: str, eml: bytes, *, default_folder: str | None = None) -> str:
        """What ``sieve-test`` says ``script`` does with the message ``eml`` (it executes nothing)."""
        work = Path(tempfile.mkdtemp(prefix="sieve-", dir=self.root))
        work.chmod(0o755)
        (work / "mail").mkdir()
        os.chown(work / "mail", MAIL_UID, MAIL_GID)
        conf = work / "sieve.conf"
        # sieve-test refuses to run as root: it switches to the mail user named here.
        conf.write_text(
            f"mail_uid = nobody\nmail_gid = nogroup\nfirst_valid_uid = 1\nfirst_valid_gid = 1\n"
            f"mail_location = maildir:{work / 'mail'}\nbase_dir = {work}\nstate_dir = {work}\n"
        )
        (work / "script.sieve").write_text(script)
        (work / "message.eml").write_bytes(eml)
        for path in work.iterdir():
            path.chmod(0o755 if path.is_dir() else 0o644)
        args = [SIEVE_TEST, "-c", str(conf)] + (["-m", default_folder] if default_folder else [])
        proc = subprocess.run(
            args + [str(work / "script.sieve"), str(work / "message.eml")],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, cwd=work,
        )
        shutil.rmtree(work, ignore_errors=True)
        if proc.returncode != 0:
            raise RuntimeError(f"sieve-test failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
        return proc.stdout


def stop_process_group(pid: int, what: str) -> None:
    """End a daemonized master that leads its own process group, and every child with it:
    SIGTERM to the whole group, SIGKILL after 5 s."""
    state = _process_state(pid)
    if state is None:
        return
    if state[1] != pid:
        raise RuntimeError(f"{what} {pid} does not lead its own process group; stop it by hand")
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if not _live_members(pid):
                return
            time.sleep(0.02)


def _process_state(pid: int) -> tuple[str, int] | None:
    """(state letter, process group) from /proc, or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may contain spaces
    return fields[0], int(fields[2])


def _alive(pid: int) -> bool:
    # A zombie is dead: nobody may reap an orphaned daemon for a while in a container.
    state = _process_state(pid)
    return state is not None and state[0] != "Z"


def _live_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            state = _process_state(int(entry.name))
            if state is not None and state[1] == pgid and state[0] != "Z":
                members.append(int(entry.name))
    return members


_LITERAL = re.compile(rb"\{(\d+)\+?\}$")
_COMMAND_START = re.compile(rb"^[A-Za-z0-9._-]+ ([A-Za-z]+)(?: ([A-Za-z]+))?")
_TIMESTAMP = re.compile(rb"^\d+\.\d+ ")


def strip_rawlog_timestamps(data: bytes) -> bytes:
    r"""The client's bytes without the ``<secs>.<usecs> `` Dovecot 2.3 puts before every line.

    Literal payloads are split into lines and stamped too, so the literal's byte count
    only holds once the stamps are gone.

    >>> strip_rawlog_timestamps(b"1.5 a1 NOOP\r\n2.25 a2 LOGOUT\r\n")
    b'a1 NOOP\r\na2 LOGOUT\r\n'
    """
    return b"\n".join(_TIMESTAMP.sub(b"", line, count=1) for line in data.split(b"\n"))


def parse_rawlog_commands(data: bytes) -> list[str]:
    r"""Command names in a client-to-server byte stream, skipping literal payloads.

    A command line ending in ``{n}`` or ``{n+}`` continues after n bytes of literal
    data, so a message body containing a line like ``b3 LOGOUT`` is never counted.

    >>> parse_rawlog_commands(b"a1 SELECT INBOX\r\na2 APPEND INBOX {11+}\r\nb3 LOGOUT\r\n\r\na4 UID fetch 1 FLAGS\r\n")
    ['SELECT', 'APPEND', 'UID FETCH']
    """
    names: list[str] = []
    pos = 0
    at_command_start = True
    while pos < len(data):
        end = data.find(b"\r\n", pos)
        end = len(data) if end < 0 else end
        line = data[pos:end]
        pos = end + 2
        if at_command_start:
            names.extend(_command_name(line))
        literal = _LITERAL.search(line)
        if literal:
            pos += int(literal.group(1))
            at_command_start = False  # the rest of this command follows the literal
        else:
            at_command_start = True
    return names


def _command_name(line: bytes) -> list[str]:
    """``[NAME]`` for a tagged command line; [] for IDLE's DONE or an empty line."""
    match = _COMMAND_START.match(line)
    if not match:
        return []
    first, second = match.group(1).upper().decode(), (match.group(2) or b"").upper().decode()
    return [f"UID {second}"] if first == "UID" and second else [first]
