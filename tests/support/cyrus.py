"""A private Cyrus IMAP for tests: its own imapd.conf, cyrus.conf, SASL database and spool in a temp dir.

Cyrus runs from the Debian packages unpacked into a private prefix (see
tests/support/requirements.py), never as the system service: every command gets
``-C`` with this instance's imapd.conf, the master listens on 127.0.0.1 only, and
every path it writes is under the instance's root.

Two layouts, both seen in the field: Debian's default (``altnamespace: no``,
``unixhierarchysep: no``: personal folders under ``INBOX.``, separator ``.``) and the
upstream default (both ``yes``: no prefix, separator ``/``).  One master serves
extra listeners that hide capabilities (``suppress_capabilities``) on the same
mailboxes, so a server without MOVE or UIDPLUS costs no second instance.

Cyrus is stricter than Dovecot about what it stores, and tests must see that: APPEND
refuses messages with NUL bytes or malformed header lines, and ``munge8bit`` rewrites
raw 8-bit bytes in headers to ``X``.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import itertools
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import pytest
from imapclient import IMAPClient

from tests.support.dovecot import _process_state, free_port, parse_rawlog_commands, stop_process_group
from tests.support.requirements import cyrus_prefix, missing_reason as requirements_missing

SASLPASSWD2 = "/usr/sbin/saslpasswd2"
ADMIN = "cyrusadm"
ADMIN_PASSWORD = "admin-secret"
MAIL_USER, MAIL_GROUP = "nobody", "nogroup"  # Cyrus refuses to run as root; its files belong to this user
START_TIMEOUT = 15.0
# Without these the instance would be shaped by the package's defaults in /etc, or slowed
# by work a test never needs (delayed expunge, virus scan, search indexing).
_FIXED_SETTINGS = """\
admins: {admin}
allowplaintext: yes
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_mech_list: PLAIN LOGIN
hashimapspool: true
autocreate_users: none
expunge_mode: immediate
delete_mode: immediate
syslog_prefix: mailrules-test-cyrus
skiplist_unsafe: yes
"""


def binary(name: str) -> Path:
    return cyrus_prefix() / "usr" / "lib" / "cyrus" / "bin" / name


def library_path() -> str:
    """Where the unpacked packages keep Cyrus's own shared libraries (a multiarch directory)."""
    found = glob.glob(str(cyrus_prefix() / "usr" / "lib" / "*" / "libcyrus_min.so.0"))
    return os.path.dirname(found[0]) if found else ""


def missing_reason() -> str | None:
    """Why a private Cyrus can't run here, or None when it can."""
    return requirements_missing("cyrus")


def require_cyrus() -> None:
    """Skip the calling test when Cyrus is missing, but fail it when ``CI`` is set."""
    reason = missing_reason()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason}. CI must install it; the server tests may not be skipped there.", pytrace=False)
    pytest.skip(reason)


@dataclass(frozen=True, slots=True)
class Layout:
    """How a Cyrus names folders: the personal namespace's prefix and the hierarchy separator."""

    name: str
    altnamespace: bool
    unixhierarchysep: bool

    @property
    def delimiter(self) -> str:
        return "/" if self.unixhierarchysep else "."

    @property
    def prefix(self) -> str:
        return "" if self.altnamespace else "INBOX" + self.delimiter

    def native(self, folder: str) -> str:
        """The server's name for a ``/``-separated folder relative to the personal namespace."""
        if folder.upper() == "INBOX":
            return "INBOX"
        return self.prefix + folder.replace("/", self.delimiter)

    def portable(self, name: str) -> str:
        """The inverse of :meth:`native`: ``INBOX.Lists.lkml`` -> ``Lists/lkml`` on the default layout."""
        if name.upper() == "INBOX" or not name.startswith(self.prefix):
            return name
        return name[len(self.prefix):].replace(self.delimiter, "/")

    def user_mailbox(self, username: str) -> str:
        """The admin's name for a user's INBOX: ``user.NAME`` (``user/NAME`` with unixhierarchysep)."""
        return f"user{self.delimiter}{username}"


DEBIAN_DEFAULT = Layout("cyrus-default", altnamespace=False, unixhierarchysep=False)
UPSTREAM_DEFAULT = Layout("cyrus-alt", altnamespace=True, unixhierarchysep=True)
# Extra listeners of every instance: name -> capabilities the server hides there.
VARIANTS: Mapping[str, tuple[str, ...]] = {
    "no-move": ("MOVE",),
    "no-move-no-uidplus": ("MOVE", "UIDPLUS"),
    "no-uidplus": ("UIDPLUS",),
}


@dataclass(frozen=True, slots=True)
class CyrusUser:
    """A mail account on a test Cyrus; ``rawlog_dir`` receives one protocol log per session."""

    username: str
    password: str
    host: str
    port: int
    rawlog_dir: Path
    tls_port: int | None = None


class Cyrus:
    """One private Cyrus master rooted in a fresh temp dir.

    ``suppress_capabilities`` hides capabilities on the main port; the ports in
    ``variant_ports`` (keys of :data:`VARIANTS`) serve the same mailboxes with
    capabilities hidden, see :meth:`on_variant`.
    """

    _serial = itertools.count(1)

    def __init__(self, layout: Layout = DEBIAN_DEFAULT, *, suppress_capabilities: tuple[str, ...] = ()):
        self.layout = layout
        self.suppress_capabilities = suppress_capabilities
        # Not under pytest's tmp dir: that is 0700 root and the mail user must traverse it.
        self.root = Path(tempfile.mkdtemp(prefix="mailrules-cyrus-"))
        self.root.chmod(0o755)
        self.host = "127.0.0.1"
        self.port = 0
        self.variant_ports: dict[str, int] = {}
        self.conf_path = self.root / "imapd.conf"
        self.cyrus_conf_path = self.root / "cyrus.conf"
        self.sasldb = self.root / "sasldb2"
        self.log_path = self.root / "master.log"
        self.pid_path = self.root / "run" / "master.pid"
        self.config_dir = self.root / "config"
        self._users: dict[str, CyrusUser] = {}
        atexit.register(self.stop)

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> Cyrus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Cyrus:
        """Start the master and wait for a greeting; ports taken meanwhile are retried."""
        self._make_directories()
        self._set_password(ADMIN, ADMIN_PASSWORD)
        log = ""
        for _ in range(3):  # another process may take a free port before the master binds it
            self.port = free_port()
            self.variant_ports = {name: free_port() for name in VARIANTS}
            self._write_configs()
            if self._launch():
                return self
            log = self.log_tail()
            self._terminate()
        self.stop()
        raise RuntimeError(f"Cyrus did not start; its log says:\n{log}")

    def _make_directories(self) -> None:
        # What Debian's makedirs creates, without reading /etc: the control directories
        # and the hashed spool, all owned by the mail user.
        hashed = "abcdefghijklmnopqrstuvwxyz"
        dirs = [self.config_dir / sub for sub in ("db", "proc", "socket", "log", "msg", "user", "quota", "lock")]
        dirs += [self.config_dir / sub / letter for sub in ("user", "quota", "lock") for letter in hashed]
        dirs += [self.root / "spool" / letter for letter in hashed] + [self.root / "spool" / "stage."]
        dirs += [self.root / sub for sub in ("run", "sieve", "proc", "lock", "socket")]
        for path in dirs:
            path.mkdir(parents=True, exist_ok=True)
        self.log_path.touch()

    def _write_configs(self) -> None:
        self.conf_path.write_text(self.imapd_conf(self.suppress_capabilities))
        for name, hidden in VARIANTS.items():
            self._variant_conf(name).write_text(self.imapd_conf(tuple({*self.suppress_capabilities, *hidden})))
        self.cyrus_conf_path.write_text(self.cyrus_conf())
        _chown_tree(self.root)

    def _variant_conf(self, name: str) -> Path:
        return self.root / f"imapd-{name}.conf"

    def _launch(self) -> bool:
        proc = subprocess.run(
            [str(binary("master")), "-C", str(self.conf_path), "-M", str(self.cyrus_conf_path),
             "-p", str(self.pid_path), "-d", "-L", str(self.log_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=self._env(), timeout=30,
        )
        if proc.returncode != 0:
            self.log_path.write_bytes(self.log_path.read_bytes() + proc.stderr)
            return False
        return all(self._await_greeting(port) for port in (self.port, *self.variant_ports.values()))

    def _await_greeting(self, port: int) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                with socket.create_connection((self.host, port), timeout=5) as sock:
                    if sock.recv(200).startswith(b"* OK"):
                        return True
            if self._master_pid() is None and self.pid_path.exists():
                return False
            time.sleep(0.05)
        return False

    def _env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LD_LIBRARY_PATH": library_path(), "LC_ALL": "C"}

    def stop(self) -> None:
        """Stop the master and its children and delete everything the instance wrote; safe twice."""
        atexit.unregister(self.stop)
        self._terminate()
        shutil.rmtree(self.root, ignore_errors=True)

    def _terminate(self) -> None:
        pid = self._master_pid()
        if pid is None:
            return
        # The whole group: the master alone waits for its imapd children to finish.
        stop_process_group(pid, "Cyrus master")

    def _master_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            pid = int(self.pid_path.read_text().strip())
            state = _process_state(pid)
            if state is not None and state[0] != "Z":
                return pid
        return None

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:]) or "(empty log)"
        return "(no log)"

    # ------------------------------------------------------------ configuration

    def imapd_conf(self, suppressed: tuple[str, ...] = ()) -> str:
        root = self.root
        hidden = f"suppress_capabilities: {' '.join(sorted(suppressed))}\n" if suppressed else ""
        yes_no = {True: "yes", False: "no"}
        return (
            f"configdirectory: {self.config_dir}\n"
            f"partition-default: {root / 'spool'}\n"
            f"proc_path: {root / 'proc'}\n"
            f"mboxname_lockpath: {root / 'lock'}\n"
            f"lmtpsocket: {root / 'socket' / 'lmtp'}\n"
            f"idlesocket: {root / 'socket' / 'idle'}\n"
            f"notifysocket: {root / 'socket' / 'notify'}\n"
            f"sievedir: {root / 'sieve'}\n"
            f"sasl_sasldb_path: {self.sasldb}\n"
            f"cyrus_user: {MAIL_USER}\n"
            f"cyrus_group: {MAIL_GROUP}\n"
            f"altnamespace: {yes_no[self.layout.altnamespace]}\n"
            f"unixhierarchysep: {yes_no[self.layout.unixhierarchysep]}\n"
            + _FIXED_SETTINGS.format(admin=ADMIN) + hidden
        )

    def cyrus_conf(self) -> str:
        conf = self.conf_path
        # Service names are letters and digits only: anything else is a configuration error.
        services = [f'  imap cmd="{binary("imapd")} -C {conf} -U 30" listen="{self.host}:{self.port}" prefork=0']
        for name, port in self.variant_ports.items():
            services.append(f'  imap{name.replace("-", "")} cmd="{binary("imapd")} -C {self._variant_conf(name)} -U 30" '
                            f'listen="{self.host}:{port}" prefork=0')
        return (
            "START {\n"
            f'  recover cmd="{binary("ctl_cyrusdb")} -C {conf} -r"\n'
            "}\nSERVICES {\n" + "\n".join(services) + "\n}\nEVENTS {\n"
            f'  checkpoint cmd="{binary("ctl_cyrusdb")} -C {conf} -c" period=30\n'
            "}\n"
        )

    # ------------------------------------------------------------ users and mail

    def _set_password(self, name: str, password: str) -> None:
        subprocess.run([SASLPASSWD2, "-p", "-f", str(self.sasldb), "-c", name], input=password.encode(),
                       check=True, capture_output=True, timeout=30)
        os.chown(self.sasldb, *_mail_ids())
        self.sasldb.chmod(0o640)

    def add_user(self, name: str | None = None, password: str = "secret") -> CyrusUser:
        """A fresh account with an empty INBOX, created by the admin (a generated name unless given)."""
        name = name or f"user{next(self._serial)}"
        if not re.fullmatch(r"[a-z0-9_-]+", name) or name in self._users:
            raise ValueError(f"user name {name!r} is taken or not a plain Cyrus login")
        self._set_password(name, password)
        rawlog = self.config_dir / "log" / name
        rawlog.mkdir()
        os.chown(rawlog, *_mail_ids())
        with self.admin() as imap:
            imap.create_folder(self.layout.user_mailbox(name))
        user = CyrusUser(name, password, self.host, self.port, rawlog)
        self._users[name] = user
        return user

    def on_variant(self, user: CyrusUser, variant: str) -> CyrusUser:
        """The same account on the listener that hides ``VARIANTS[variant]``."""
        return replace(user, port=self.variant_ports[variant])

    @contextlib.contextmanager
    def admin(self) -> Iterator[IMAPClient]:
        imap = IMAPClient(self.host, port=self.port, ssl=False, timeout=30)
        try:
            imap.login(ADMIN, ADMIN_PASSWORD)
            yield imap
        finally:
            with contextlib.suppress(Exception):
                imap.logout()

    @contextlib.contextmanager
    def client(self, user: CyrusUser) -> Iterator[IMAPClient]:
        """An independent IMAP session for the user (plays "another mail client")."""
        imap = IMAPClient(self.host, port=user.port, ssl=False, timeout=30)
        try:
            imap.login(user.username, user.password)
            yield imap
        finally:
            with contextlib.suppress(Exception):
                imap.logout()

    def append(self, user: CyrusUser, raw: bytes, folder: str = "INBOX", flags: tuple[str, ...] = (),
               internaldate: datetime | None = None) -> int | None:
        """Store a message over APPEND into ``folder`` (``/``-separated, created if needed); returns its UID.

        Cyrus's refusals (NUL bytes, invalid header lines) raise ``IMAPClient.Error``.
        """
        name = self.layout.native(folder)
        with self.client(user) as imap:
            if not imap.folder_exists(name):
                imap.create_folder(name)
            response = imap.append(name, raw, flags=flags, msg_time=internaldate)
        match = re.search(rb"\[APPENDUID \d+ (\d+)\]", response or b"")
        return int(match.group(1)) if match else None

    def capabilities(self, user: CyrusUser) -> list[str]:
        """The post-login CAPABILITY list the server advertises to ``user`` (on ``user.port``)."""
        with self.client(user) as imap:
            return [cap.decode() for cap in imap.capabilities()]

    # ------------------------------------------------------------ observing clients

    def rawlog_commands(self, user: CyrusUser) -> list[str]:
        """Names of the commands the user's sessions sent after login, in order (``UID FETCH`` …)."""
        commands: list[str] = []
        for path in sorted(user.rawlog_dir.iterdir(), key=lambda path: path.stat().st_mtime_ns):
            commands.extend(parse_rawlog_commands(client_bytes(path.read_bytes())))
        return commands

    def clear_rawlog(self, user: CyrusUser) -> None:
        for path in user.rawlog_dir.iterdir():
            path.unlink()


# A telemetry log interleaves chunks: "<SECONDS<" before client bytes, ">SECONDS>" before
# the server's.  A chunk runs to the next marker at a line start.
_CHUNK = re.compile(rb"(?:^|(?<=\n))([<>])\d+\1")


def client_bytes(log: bytes) -> bytes:
    r"""What the client sent, from a Cyrus telemetry log (its header line and the server's chunks dropped).

    >>> client_bytes(b"---------- u Thu\r\n\r\n>1>* OK hi\r\n<2<a1 NOOP\r\n>2>a1 OK\r\n<3<a2 LOGOUT\r\n")
    b'a1 NOOP\r\na2 LOGOUT\r\n'
    """
    parts = _CHUNK.split(log)
    # split() yields [before, marker, chunk, marker, chunk, ...]
    return b"".join(chunk for marker, chunk in zip(parts[1::2], parts[2::2]) if marker == b"<")


def _mail_ids() -> tuple[int, int]:
    import grp
    import pwd

    return pwd.getpwnam(MAIL_USER).pw_uid, grp.getgrnam(MAIL_GROUP).gr_gid


def _chown_tree(root: Path) -> None:
    uid, gid = _mail_ids()
    for path in (root, *root.rglob("*")):
        os.chown(path, uid, gid)
