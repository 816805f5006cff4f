"""A server that echoes LOGIN back never gets the password shown.

Some servers and proxies answer a refused LOGIN with the command's own text, password
included (``a001 NO LOGIN user "password" failed``, a ``BAD`` naming the command, a
``BYE`` before hanging up).  Whatever the answer, the password appears in nothing
mailrules prints, with or without ``-v``, and in nothing it writes to its state.

The server here is a tiny socket server that speaks just enough IMAP for that one
answer: no real server sends it, so no real server can stand in for it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.robustness.harness import PASSWORD_ENV, workspace

REPO = Path(__file__).resolve().parents[2]
NOW = "2026-11-20T10:00:00Z"
RULES = "version: 1\nrules:\n  - name: all\n    when: {subject: x}\n    then: [{flag: seen}]\n"
# A quote and a backslash: imaplib sends them escaped, so the echo carries that form too.
PASSWORDS = ("Zebra-Quokka-9431-sekr3t", 'Okapi"Narwhal\\7718-qu0te')

Answer = Callable[[bytes, bytes], bytes]


def tagged(verdict: str) -> Answer:
    return lambda tag, line: tag + f" {verdict} ".encode() + line + b" failed\r\n"


ANSWERS: dict[str, Answer] = {
    "NO": tagged("NO [AUTHENTICATIONFAILED]"),
    "BAD": lambda tag, line: tag + b" BAD Error in IMAP command received by server: " + line + b"\r\n",
    "BYE": lambda tag, line: b"* BYE Refused: " + line + b"\r\n",
    "untagged NO": lambda tag, line: b"* NO " + line + b"\r\n" + tag + b" NO " + line + b"\r\n",
}


class EchoingServer:
    """Greets, answers CAPABILITY, and answers LOGIN with ``answer(tag, the LOGIN line)``."""

    def __init__(self, answer: Answer):
        self.answer = answer
        self.hangs_up = answer(b"a1", b"LOGIN").startswith(b"* BYE")
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.logins: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(connection,), daemon=True).start()

    def _session(self, connection: socket.socket) -> None:
        with connection, connection.makefile("rb") as lines:
            connection.sendall(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] echo server ready\r\n")
            for raw in lines:
                line = raw.rstrip(b"\r\n")
                tag, _, command = line.partition(b" ")
                verb = command.split(b" ", 1)[0].upper()
                if verb == b"LOGIN":
                    self.logins.append(line)
                    connection.sendall(self.answer(tag, command))
                    if self.hangs_up:
                        return
                elif verb == b"CAPABILITY":
                    connection.sendall(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + b" OK done\r\n")
                elif verb == b"LOGOUT":
                    connection.sendall(b"* BYE bye\r\n" + tag + b" OK done\r\n")
                    return
                else:
                    connection.sendall(tag + b" BAD unexpected\r\n")

    def close(self) -> None:
        self.listener.close()


@pytest.fixture(params=sorted(ANSWERS))
def server(request: pytest.FixtureRequest) -> Iterator[EchoingServer]:
    echo = EchoingServer(ANSWERS[request.param])
    yield echo
    echo.close()


class _User:
    def __init__(self, username: str):
        self.username = username


@pytest.mark.parametrize("password", PASSWORDS)
@pytest.mark.parametrize("verbose", [[], ["-v"], ["-vv"]])
def test_an_echoed_login_never_shows_the_password(server: EchoingServer, password: str, verbose: list[str],
                                                  tmp_path: Path) -> None:
    ws = workspace(tmp_path, RULES).point_at("127.0.0.1", server.port, _User("echo-user"))  # type: ignore[arg-type]
    done = subprocess.run([sys.executable, "-m", "mailrules", *ws.run_args("--now", NOW), *verbose], cwd=REPO,
                          capture_output=True, text=True, timeout=60, env={**os.environ, PASSWORD_ENV: password})
    assert server.logins, "the client never sent LOGIN"
    escaped = password.replace("\\", "\\\\").replace('"', '\\"')
    assert escaped.encode() in server.logins[0], "the server did not get the password to echo"
    output = done.stdout + done.stderr
    assert done.returncode == (3 if server.hangs_up else 6), output  # a BYE ends the session: run again
    assert "Traceback" not in output
    assert "login" in done.stderr.lower() and "echo-user" in done.stderr, done.stderr
    for form in {password, escaped, *password.split('"'), *password.split("\\")}:
        if len(form) >= 6:
            assert form not in output, output
    written = b"".join(path.read_bytes() for path in tmp_path.rglob("*") if path.is_file())
    assert password.encode() not in written and escaped.encode() not in written
