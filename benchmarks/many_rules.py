"""Load: the same mailbox planned and run with 20 rules and with 200.

    python benchmarks/many_rules.py [--size 100000]

The 200-rule file is benchmarks/rules.yaml followed by 180 generated rules of the kinds
people accumulate (one sender, one list, one subject word each, into 30 folders); most
match nothing in the generated mailbox, which is what a long rule file looks like.  For
each rule file it measures `mailrules plan` (wall, CPU, peak RSS, IMAP commands), then
runs the 200 rules for real.  Targets (issue: planning 200 rules stays within twice the
20-rule time, peak RSS at most 100 MB, commands independent of the message count) are
checked and printed; the figures go into benchmarks/README.md between their markers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import mailbox, mailgen  # noqa: E402
from benchmarks.measure import Sample, measure  # noqa: E402
from benchmarks.tools import BENCH_DIR, REPO  # noqa: E402
from tests.support.dovecot import Dovecot  # noqa: E402

PASSWORD_ENV = "MAILRULES_BENCH_PASSWORD"
MARKERS = ("<!-- many-rules:start -->", "<!-- many-rules:end -->")
KINDS = (
    ("from", "{{domain: vendor{n}.example}}"),
    ("list_id", "list{n}.lists.example"),
    ("subject", "{{contains: \"project-{n}\"}}"),
)


def many_rules_text(extra: int) -> str:
    """benchmarks/rules.yaml plus ``extra`` generated rules."""
    lines = [(BENCH_DIR / "rules.yaml").read_text().rstrip(), ""]
    for n in range(extra):
        key, value = KINDS[n % len(KINDS)]
        lines += [f"  - name: generated-{n}", "    when:", f"      {key}: {value.format(n=n)}",
                  "    then:", f"      - move: Projects/P{n % 30}", ""]
    return "\n".join(lines)


def prepare(server: Dovecot, size: int, work: Path) -> tuple[object, Path]:
    user = server.add_user(password="bench-secret")
    generated = work / "generated"
    now = datetime.now(timezone.utc)
    mailgen.write_maildir(generated, mailgen.generate(size, seed=1, now=now), [])
    shutil.rmtree(user.maildir)
    mailbox.clone_maildir(generated, user.maildir)
    subprocess.run(["chown", "-R", "65534:65534", str(user.maildir)], check=True)
    mailbox.build_index(server.conf_path, user.username)
    accounts = work / "accounts.yaml"
    accounts.write_text(f"accounts:\n  bench:\n    imap: {{host: {server.host}, port: {server.port}, tls: none, "
                        f"username: {user.username}, password_env: {PASSWORD_ENV}}}\n")
    return user, accounts


def mailrules(command: str, rules: Path, accounts: Path, state: Path) -> list[str]:
    argv = [sys.executable, "-m", "mailrules", command, str(rules), "--accounts", str(accounts),
            "--account", "bench", "--state", str(state)]
    return argv + (["--yes"] if command == "run" else [])


def row(label: str, sample: Sample) -> str:
    process = sample.process
    return (f"| {label} | {process.wall:.1f} | {process.cpu:.1f} | {process.max_rss_kib / 1024:.0f} | "
            f"{sample.traffic.total_commands} | {'ok' if process.returncode == 0 else f'exit {process.returncode}'} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="mailrules-many-rules-"))
    rules20, rules200 = BENCH_DIR / "rules.yaml", work / "rules200.yaml"
    rules200.write_text(many_rules_text(180))
    with Dovecot() as server:
        server.start()
        user, accounts = prepare(server, args.size, work)
        env = {**os.environ, PASSWORD_ENV: "bench-secret", "PYTHONPATH": str(REPO)}
        plan20 = measure(server, user, mailrules("plan", rules20, accounts, work / "s20.db"), env, REPO, work / "p20")
        plan200 = measure(server, user, mailrules("plan", rules200, accounts, work / "s200.db"), env, REPO, work / "p200")
        run200 = measure(server, user, mailrules("run", rules200, accounts, work / "r200.db"), env, REPO, work / "r200")
    shutil.rmtree(work, ignore_errors=True)
    ratio = plan200.process.wall / plan20.process.wall
    rss = max(sample.process.max_rss_kib for sample in (plan20, plan200, run200)) / 1024
    table = "\n".join([
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPUs, {args.size:,} messages in INBOX.",
        "",
        "| run | wall s | CPU s | peak RSS MiB | IMAP commands | result |",
        "|---|---:|---:|---:|---:|---|",
        row("plan, 20 rules", plan20), row("plan, 200 rules", plan200), row("run, 200 rules", run200),
        "",
        f"200 rules plan in {ratio:.2f} x the 20-rule time (target at most 2); peak RSS {rss:.0f} MiB (target at most 100).",
    ])
    print(table)
    if not args.no_readme:
        readme = BENCH_DIR / "README.md"
        text = readme.read_text()
        start, end = text.index(MARKERS[0]) + len(MARKERS[0]), text.index(MARKERS[1])
        readme.write_text(text[:start] + "\n" + table + "\n" + text[end:])
    ok = all(s.process.returncode == 0 for s in (plan20, plan200, run200)) and ratio <= 2 and rss <= 100
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
