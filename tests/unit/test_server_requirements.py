"""What scripts/test installs and the server fixtures require: the files the tests execute, and markers that hold."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import tests.support.requirements as requirements
from tests.support.requirements import Requirement, missing, missing_reason, packages

ROOT = Path(__file__).resolve().parents[2]


def make_file(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    return str(path)


def test_a_missing_file_names_its_package_even_when_its_siblings_are_there(tmp_path: Path) -> None:
    table = (
        Requirement(make_file(tmp_path / "usr/sbin/dovecot"), "dovecot-core", "dovecot"),
        Requirement(str(tmp_path / "usr/lib/dovecot/imap"), "dovecot-imapd", "dovecot"),
        Requirement(make_file(tmp_path / "usr/lib/x86_64-linux-gnu/libical.so.3").replace("x86_64-linux-gnu", "*"),
                    "libical3", "cyrus"),
    )
    absent = missing(("dovecot", "cyrus"), table)
    assert [req.package for req in absent] == ["dovecot-imapd"]
    assert missing(("cyrus",), table) == []


def test_the_table_checks_what_the_dovecot_tests_execute() -> None:
    dovecot = {req.pattern for req in requirements.REQUIREMENTS if req.group == "dovecot"}
    assert {"/usr/sbin/dovecot", "/usr/lib/dovecot/imap", "/usr/bin/sieve-test", "/usr/bin/openssl"} <= dovecot
    cyrus = {req.pattern for req in requirements.REQUIREMENTS if req.group == "cyrus"}
    assert {"/usr/lib/cyrus/bin/master", "/usr/lib/cyrus/bin/imapd", "/usr/sbin/saslpasswd2"} <= cyrus


def test_unpacked_files_live_under_the_cyrus_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MAILRULES_CYRUS_PREFIX", str(tmp_path))
    imapd = Requirement("/usr/lib/cyrus/bin/imapd", "cyrus-imapd", "cyrus", unpacked=True)
    assert not imapd.present()
    make_file(tmp_path / "usr/lib/cyrus/bin/imapd")
    assert imapd.present()
    assert packages([imapd], unpacked=True) == ["cyrus-imapd"] and packages([imapd], unpacked=False) == []


def run_check(*args: str, prefix: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MAILRULES_CYRUS_PREFIX": str(prefix), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "tests.support.requirements", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_the_command_scripts_test_runs_lists_what_to_unpack(tmp_path: Path) -> None:
    empty = run_check("unpack", "cyrus", prefix=tmp_path / "none")
    assert empty.returncode == 0 and empty.stdout.split() == ["cyrus-common", "cyrus-imapd"]
    # One file gone is the whole prefix unpacked again: it is replaced, never patched.
    partial = tmp_path / "partial"
    for req in requirements.REQUIREMENTS:
        if req.unpacked and req.package == "cyrus-common":
            make_file(partial / req.pattern.lstrip("/").replace("*", "x86_64-linux-gnu"))
    assert run_check("unpack", "cyrus", prefix=partial).stdout.split() == ["cyrus-common", "cyrus-imapd"]
    assert run_check("unpack", "dovecot", prefix=tmp_path / "none").stdout == ""
    assert run_check("nonsense", prefix=tmp_path).returncode == 2


def test_missing_reason_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MAILRULES_CYRUS_PREFIX", str(tmp_path / "none"))
    reason = missing_reason("cyrus")
    assert reason is not None
    assert str(tmp_path / "none" / "usr/lib/cyrus/bin/imapd") in reason
    assert "unpack cyrus-common cyrus-imapd into" in reason and "scripts/test" in reason


def test_deselecting_the_server_markers_starts_no_server(tmp_path: Path) -> None:
    """``-m "not dovecot and not cyrus"`` runs the server-test directories and no server starts."""
    log = tmp_path / "starts.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MAILRULES_TEST_SERVER_LOG": str(log)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not dovecot and not cyrus",
         "tests/integration", "tests/conformance"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    # Judged on server starts alone: a failure of some offline test is that test's business.
    assert " passed" in proc.stdout and "deselected" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "without being marked" not in proc.stdout
    assert not log.exists(), f"servers started by deselected-marker runs:\n{log.read_text()}"
