"""Peak memory of a run whose rules read message bodies, on a mailbox of large messages.

    python benchmarks/memory.py                       # 10 messages of 30 MB
    python benchmarks/memory.py --count 8 --size-mb 33

Each message is a text part and a base64 attachment of about ``--size-mb`` MB in all,
delivered to a private Dovecot.  The rules have a ``body`` condition, so every message is
fetched whole.  ``mailrules run`` is measured under GNU time (peak RSS of the process
itself); the figure goes to benchmarks/README.md by hand.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.measure import run_process  # noqa: E402
from tests.support.dovecot import Dovecot, require_dovecot  # noqa: E402

PASSWORD_ENV = "MAILRULES_MEMORY_PASSWORD"
RULES = """\
version: 1
rules:
  - name: needles
    when: {body: {contains: "needle in the haystack"}}
    then: [{move: Found}]
  - name: large
    when: {larger: 10M}
    then: [{flag: flagged}]
"""


def large_message(number: int, size: int, chance: random.Random) -> bytes:
    """A text part (a quarter of the size, the needle at its end) and a base64 attachment."""
    text_size = size // 4
    line = "The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
    text = line * (text_size // len(line)) + ("needle in the haystack\r\n" if number % 2 == 0 else "")
    blob = base64.encodebytes(chance.randbytes((size - text_size) * 3 // 4)).replace(b"\n", b"\r\n")
    head = (f"From: big@example.net\r\nTo: u@example.com\r\nSubject: large {number}\r\n"
            f"Message-ID: <large-{number}@example.net>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b-large"\r\n\r\n'
            "--b-large\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
    attachment = ("\r\n--b-large\r\nContent-Type: application/octet-stream\r\n"
                  'Content-Disposition: attachment; filename="blob.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n')
    return head.encode() + text.encode() + attachment.encode() + blob + b"\r\n--b-large--\r\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--size-mb", type=float, default=30.0)
    args = parser.parse_args()
    require_dovecot()
    size = int(args.size_mb * 1024 * 1024)
    chance = random.Random(18)
    with tempfile.TemporaryDirectory(prefix="mailrules-memory-") as scratch:
        work = Path(scratch)
        server = Dovecot().start()
        try:
            user = server.add_user(password="memory")
            for number in range(args.count):
                server.deliver(user, large_message(number, size, chance))
            (work / "rules.yaml").write_text(RULES)
            (work / "accounts.yaml").write_text(
                "accounts:\n  m:\n"
                f"    imap: {{host: {server.host}, port: {server.port}, tls: none, username: {user.username}, "
                f"password_env: {PASSWORD_ENV}}}\n")
            argv = [sys.executable, "-m", "mailrules", "run", str(work / "rules.yaml"), "--accounts",
                    str(work / "accounts.yaml"), "--account", "m", "--state", str(work / "state.sqlite3"), "--yes"]
            env = {**os.environ, PASSWORD_ENV: "memory", "PYTHONPATH": str(ROOT),
                   "MAILRULES_LOCK_DIR": str(work / "locks")}
            process = run_process(argv, env, ROOT, work / "log")
        finally:
            server.stop()
    if process.returncode != 0:
        print(process.stderr, file=sys.stderr)
        return 1
    print(f"{args.count} messages of {args.size_mb:g} MB: peak RSS {process.max_rss_kib / 1024:.0f} MB, "
          f"{process.wall:.1f} s wall, {process.cpu:.1f} s CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
