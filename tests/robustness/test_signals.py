"""SIGINT and SIGTERM end a run within 5 s, cleanly, at any moment.

Whenever the signal lands — while the command starts up, plans, or carries out the plan,
and even when the server has stopped answering — the process exits within 5 s with
128 + the signal (130 / 143) and one line, never a traceback; the run is marked
``interrupted`` in ``history`` (never left ``running``); the locks are released; and the
next run finishes the job with nothing lost and nothing duplicated.

"Start-up" begins where mailrules's own code does: the entry point installs its handlers
on its first line, and the tests wait for the process to have them (``SigCgt`` in
``/proc``) before counting moments.  Before that the interpreter itself is starting, and a
signal there is the interpreter's to handle.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.robustness.harness import PASSWORD_ENV, Workspace, workspace
from tests.robustness.mailbox_state import read_state
from tests.support.dovecot import Dovecot, User
from tests.support.faultproxy import FaultProxy, Hold, named

REPO = Path(__file__).resolve().parents[2]
NOW = "2026-11-20T10:00:00Z"
PASSWORD = "signal-pw"
LIMIT = 5.0  # seconds from the signal to the exit
SIGNALS = (signal.SIGINT, signal.SIGTERM)

RULES = """\
version: 1
rules:
  - name: spam
    when: {header: {name: X-Spam-Flag, is: "YES"}}
    then: [delete]
  - name: reports
    when: {subject: report}
    then: [{copy: Copies}, {flag: seen}, {move: Reports}]
  - name: rest
    when: {subject: hello}
    then: [{flag: flagged}]
"""


def seed(server: Dovecot, user: User, count: int = 20) -> None:
    for number in range(count):
        kind = ("report", "hello", "spam")[number % 3]
        spam = "X-Spam-Flag: YES\r\n" if kind == "spam" else ""
        server.deliver(user, (f"From: s@example.net\r\nTo: u@example.com\r\nSubject: {kind} {number}\r\n"
                              f"Message-ID: <sig-{number}@example.net>\r\n{spam}\r\nbody {number}\r\n").encode())
    server.deliver(user, b"From: s@example.net\r\nSubject: report w\r\nMessage-ID: <sig-w@example.net>\r\n\r\nw\r\n",
                   folder="Work")


def outcome(server: Dovecot, user: User) -> dict[str, Counter[tuple[str, frozenset[str]]]]:
    """Folder -> each (Message-ID, flags) with its count: a duplicate counts twice."""
    return {folder: Counter({(mid, frozenset(flags)): n for (mid, flags), n in entries.items()})
            for folder, entries in read_state(server, user).entries().items()}


def child(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "mailrules", *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, PASSWORD_ENV: PASSWORD})


def wait_for_handlers(proc: subprocess.Popen[str], timeout: float = 20.0) -> None:
    """Until the entry point's first line has run: the process catches SIGTERM."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
        except OSError:
            return  # already gone
        caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
        if caught & (1 << (signal.SIGTERM - 1)):
            return
        time.sleep(0.001)
    pytest.fail("the process never installed its signal handlers")


@dataclass(frozen=True, slots=True)
class Stopped:
    code: int
    stdout: str
    stderr: str
    seconds: float  # from the signal to the exit


def signal_and_wait(proc: subprocess.Popen[str], number: int) -> Stopped:
    proc.send_signal(number)
    sent = time.monotonic()
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"still running 30 s after signal {number}: {err[-1000:]}")
    return Stopped(proc.returncode, out, err, time.monotonic() - sent)


def assert_clean_stop(stopped: Stopped, number: int, *, may_finish: bool = False) -> None:
    allowed = {128 + number} | ({0} if may_finish else set())
    assert stopped.code in allowed, f"exit {stopped.code}:\n{stopped.stderr[-2000:]}"
    assert stopped.seconds <= LIMIT, f"took {stopped.seconds:.1f} s after the signal"
    assert "Traceback" not in stopped.stdout + stopped.stderr, stopped.stderr
    if stopped.code != 0:
        assert "interrupted" in stopped.stderr, stopped.stderr


def statuses(ws: Workspace) -> list[str]:
    """Each recorded run's status, newest first."""
    done = subprocess.run([sys.executable, "-m", "mailrules", "history", "--json", "--state", str(ws.state)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [run["status"] for run in json.loads(done.stdout)["runs"]]


def finish(ws: Workspace, server: Dovecot, user: User) -> None:
    done = subprocess.run([sys.executable, "-m", "mailrules", *ws.point_at(server.host, server.port, user)
                           .run_args("--now", NOW)], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, PASSWORD_ENV: PASSWORD})
    assert done.returncode == 0, f"the run after the signal failed (is the lock still held?):\n{done.stderr}"


@pytest.fixture(scope="module")
def reference(dovecot: Dovecot, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, float]:
    """What a clean run leaves, and how long a whole run takes through the slow proxy."""
    user = dovecot.add_user(password=PASSWORD)
    seed(dovecot, user)
    ws = workspace(tmp_path_factory.mktemp("reference"), RULES)
    with FaultProxy(dovecot.host, dovecot.port, response_delay=0.02) as proxy:
        proc = child(ws.point_at(proxy.host, proxy.port, user).run_args("--now", NOW))
        wait_for_handlers(proc)
        started = time.monotonic()
        _, err = proc.communicate(timeout=120)
        seconds = time.monotonic() - started
    assert proc.returncode == 0, err
    return outcome(dovecot, user), seconds


def signal_trials(dovecot: Dovecot, reference: tuple[dict, float], root: Path, trials: int, seed_: int) -> None:
    expected, duration = reference
    chance = random.Random(seed_)
    for trial in range(trials):
        number = SIGNALS[trial % 2]
        moment = chance.uniform(0, duration)
        user = dovecot.add_user(password=PASSWORD)
        seed(dovecot, user)
        ws = workspace(root / f"trial-{trial}", RULES)
        with FaultProxy(dovecot.host, dovecot.port, response_delay=0.02) as proxy:
            proc = child(ws.point_at(proxy.host, proxy.port, user).run_args("--now", NOW))
            wait_for_handlers(proc)
            time.sleep(moment)
            stopped = signal_and_wait(proc, number)
        where = f"trial {trial}: {signal.Signals(number).name} at {moment:.3f} s of {duration:.2f} s"
        try:
            assert_clean_stop(stopped, number, may_finish=True)
            assert "running" not in statuses(ws)
            finish(ws, dovecot, user)
            assert outcome(dovecot, user) == expected, "lost or duplicated messages"
        except AssertionError as failure:
            raise AssertionError(f"{where}: {failure}") from None


def test_signals_at_random_moments_of_a_run(dovecot: Dovecot, reference: tuple[dict, float], tmp_path: Path) -> None:
    signal_trials(dovecot, reference, tmp_path, trials=6, seed_=18)


@pytest.mark.slow
def test_signals_at_many_random_moments_of_a_run(dovecot: Dovecot, reference: tuple[dict, float],
                                                 tmp_path: Path) -> None:
    signal_trials(dovecot, reference, tmp_path, trials=40, seed_=1805)


@pytest.mark.parametrize("number", SIGNALS, ids=lambda n: signal.Signals(n).name)
def test_a_signal_at_each_moment_of_start_up(number: int, tmp_path: Path) -> None:
    """Offline commands go through the same start-up: imports, argument parsing, rule loading."""
    for step in range(12):
        proc = child(["validate", str(REPO / "rules.example.yaml")])
        wait_for_handlers(proc)
        time.sleep(step * 0.01)
        stopped = signal_and_wait(proc, number)
        assert_clean_stop(stopped, number, may_finish=True)


def test_a_signal_that_lands_in_a_finalizer_still_ends_the_command() -> None:
    """Python drops an exception raised in a ``__del__`` or a weakref callback (importlib's
    module locks run one) with "Exception ignored"; the handler's raise must not be lost there."""
    from mailrules import signals
    from mailrules.errors import Signalled

    class Finalized:
        def __del__(self) -> None:
            raise Signalled(signal.SIGINT)  # what the handler does when the signal lands here

    started = time.monotonic()
    with pytest.raises(Signalled):
        with signals.handled():
            Finalized()  # dropped at once: its __del__ runs now
            time.sleep(5)
    assert time.monotonic() - started < 1


# ---------------------------------------------------------------- a server that stops answering


@pytest.fixture
def hung_server() -> Iterator[tuple[str, int]]:
    """Accepts connections and never says a word."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()
    listener.close()
    for connection in held:
        connection.close()


@pytest.mark.parametrize("number", SIGNALS, ids=lambda n: signal.Signals(n).name)
def test_a_signal_ends_a_run_on_a_server_that_never_answers(number: int, hung_server: tuple[str, int],
                                                            tmp_path: Path) -> None:
    host, port = hung_server

    class Nobody:
        username = "nobody"

    ws = workspace(tmp_path, RULES).point_at(host, port, Nobody())  # type: ignore[arg-type]
    proc = child(ws.run_args("--now", NOW))
    wait_for_handlers(proc)
    time.sleep(1.0)  # well into the wait for a greeting
    assert proc.poll() is None, proc.communicate()
    assert_clean_stop(signal_and_wait(proc, number), number)


def test_ctrl_c_twice_on_a_server_that_never_answers(hung_server: tuple[str, int], tmp_path: Path) -> None:
    host, port = hung_server

    class Nobody:
        username = "nobody"

    proc = child(workspace(tmp_path, RULES).point_at(host, port, Nobody()).run_args("--now", NOW))  # type: ignore[arg-type]
    wait_for_handlers(proc)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    assert_clean_stop(signal_and_wait(proc, signal.SIGINT), signal.SIGINT)


@pytest.mark.parametrize(("held", "number"), [("UID FETCH", signal.SIGINT), ("UID COPY", signal.SIGTERM),
                                              ("UID MOVE", signal.SIGINT), ("UID MOVE", signal.SIGTERM)])
def test_a_signal_while_the_server_sits_on_a_command(number: int, held: str, dovecot: Dovecot,
                                                     reference: tuple[dict, float], tmp_path: Path) -> None:
    user = dovecot.add_user(password=PASSWORD)
    seed(dovecot, user)
    ws = workspace(tmp_path, RULES)
    hold = Hold(named(held), timeout=120)
    proxy = FaultProxy(dovecot.host, dovecot.port, before_command=hold).start()
    try:
        proc = child(ws.point_at(proxy.host, proxy.port, user).run_args("--now", NOW))
        assert hold.reached.wait(60), f"the run never sent {held}: {proxy.command_names()}"
        time.sleep(0.5)
        stopped = signal_and_wait(proc, number)
    finally:
        proxy.stop()  # the held command must never reach the server after the run is gone
        hold.release()
    assert_clean_stop(stopped, number)
    history = statuses(ws)
    assert "running" not in history
    if held != "UID FETCH":  # planning reads only; the run is journalled from its first change
        assert history[0] == "interrupted", history
    finish(ws, dovecot, user)
    assert outcome(dovecot, user) == reference[0]
