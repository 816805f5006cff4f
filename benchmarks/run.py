"""Benchmark mailrules against imapfilter on a private Dovecot, for mailboxes of several sizes.

    python benchmarks/run.py --sizes 1000,10000 --repeat 3 [--large] [--tools mailrules,imapfilter]

For every size: generate a mailbox (benchmarks/mailgen.py), index it once, then for each
repeat and tool put the mailbox back and measure a dry run, a first run and a second
run with nothing new.  After each run the Maildir is read back and compared with the
end state benchmarks/reference.py expects for that tool; any difference fails the
benchmark (exit status 1).  The table goes to stdout and into benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import mailbox, mailgen, reference, report  # noqa: E402
from benchmarks.measure import GNU_TIME, measure  # noqa: E402
from benchmarks.reference import EndState, Stored  # noqa: E402
from benchmarks.tools import BENCH_DIR, IMAPFILTER, REPO, Imapfilter, Mailrules, Phase, Server, Tool  # noqa: E402
from tests.support.dovecot import Dovecot, User, missing_reason  # noqa: E402

LARGE = 100_000
USERNAME, PASSWORD = "bench", "bench-secret"
DIFFERENCES_SHOWN = 5


@dataclass(frozen=True, slots=True)
class Prepared:
    """One size's generated mailbox: its cached copy and what it holds before any rule runs."""

    size: int
    cache: Path
    messages: list[Stored]
    initial: EndState


@dataclass(frozen=True, slots=True)
class Bench:
    server: Dovecot
    user: User
    work: Path
    tools: tuple[Tool, ...]
    seed: int

    def reset(self, prepared: Prepared) -> None:
        mailbox.clone_maildir(prepared.cache, self.user.maildir)

    def log_dir(self, size: int, tool: Tool, phase: Phase, repeat: int) -> Path:
        return self.work / "logs" / f"{size}-{tool.name}-{phase}-{repeat}"


# ---------------------------------------------------------------- preparing a size


def prepare(bench: Bench, size: int) -> Prepared:
    cache = bench.work / f"cache-{size}"
    now = datetime.now(timezone.utc).replace(microsecond=0)
    progress(f"{size:,} messages: generating")
    mailgen.write_maildir(cache, mailgen.generate(size, seed=bench.seed, now=now), reference.destinations())
    mailbox.clone_maildir(cache, bench.user.maildir)
    progress(f"{size:,} messages: indexing")
    mailbox.build_index(bench.server.conf_path, bench.user.username)
    mailbox.snapshot_index(bench.user.maildir, cache)
    messages = reference.read_mailbox(cache)
    return Prepared(size, cache, messages, reference.end_state(messages))


# ---------------------------------------------------------------- measuring


def expected(prepared: Prepared, tool: Tool, now: datetime) -> EndState:
    """Where one run of ``tool`` started at ``now`` must leave every message of the fresh mailbox."""
    return reference.expected_state(prepared.messages, now, tool.semantics)[0]


def run_phase(bench: Bench, prepared: Prepared, tool: Tool, phase: Phase, repeat: int,
              want: EndState | None) -> tuple[report.Measured, EndState]:
    """Measure one phase; ``want`` is the expected end state, or None to compute it from the start time."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    argv = tool.command(phase, now)
    sample = measure(bench.server, bench.user, argv, tool.environment(), REPO,
                     bench.log_dir(prepared.size, tool, phase, repeat))
    want = expected(prepared, tool, now) if want is None else want
    problem = check(sample.process.returncode, sample.process.stderr, want, bench.user.maildir)
    if problem:
        progress(f"  {tool.name} {phase} FAILED: {problem}")
    return report.Measured(prepared.size, tool.name, phase, repeat, sample, problem), want


def check(returncode: int, stderr: str, want: EndState, maildir: Path) -> str | None:
    """Why the run is wrong (exit status or end state), or None."""
    if returncode != 0:
        tail = " | ".join(stderr.strip().splitlines()[-3:])
        return f"exit status {returncode}: {tail}"
    differences = reference.compare(want, reference.read_end_state(maildir))
    if not differences:
        return None
    shown = "; ".join(f"{d.message_id}: expected {d.expected}, found {d.actual}"
                      for d in differences[:DIFFERENCES_SHOWN])
    return f"{len(differences)} message(s) not where the reference puts them, e.g. {shown}"


def one_tool(bench: Bench, prepared: Prepared, tool: Tool, repeat: int) -> list[report.Measured]:
    """Dry run on a fresh mailbox; then a first run and a second run on another fresh one."""
    bench.reset(prepared)
    dry, _ = run_phase(bench, prepared, tool, "dry-run", repeat, prepared.initial)
    bench.reset(prepared)
    tool.forget()
    first, after_first = run_phase(bench, prepared, tool, "run", repeat, None)
    # Nothing arrived, so the second run must leave everything where the first put it.
    second, _ = run_phase(bench, prepared, tool, "rerun", repeat, after_first)
    for item in (dry, first, second):
        progress(f"  {tool.name:10} {item.phase:8} {item.sample.process.wall:8.2f} s "
                 f"{item.sample.traffic.total_commands:7} commands  {'ok' if not item.problem else 'FAILED'}")
    return [dry, first, second]


def measure_size(bench: Bench, size: int, repeat: int) -> tuple[list[report.Measured], str]:
    prepared = prepare(bench, size)
    results: list[report.Measured] = []
    for index in range(repeat):
        progress(f"{size:,} messages: repeat {index + 1} of {repeat}")
        order = bench.tools if index % 2 == 0 else tuple(reversed(bench.tools))  # neither always goes first
        for tool in order:
            results += one_tool(bench, prepared, tool, index)
    return results, findings(prepared)


def findings(prepared: Prepared) -> str:
    now = datetime.now(timezone.utc)
    spec = reference.expected_state(prepared.messages, now, "spec")[1]
    other = reference.expected_state(prepared.messages, now, "imapfilter")[1]
    return report.render_findings(prepared.size, spec, other)


# ---------------------------------------------------------------- setting up


@contextmanager
def bench_environment(tool_names: Sequence[str], seed: int, keep: bool) -> Iterator[Bench]:
    # Outside pytest's 0700 temp dirs: the mail user must reach the linked message files.
    work = Path(tempfile.mkdtemp(prefix="mailrules-bench-"))
    work.chmod(0o755)
    server = Dovecot()
    try:
        server.start()
        user = server.add_user(USERNAME, PASSWORD)
        target = Server(server.host, server.port, USERNAME, PASSWORD)
        yield Bench(server, user, work, make_tools(tool_names, target, work), seed)
    finally:
        server.stop()
        if keep:
            progress(f"logs and mailboxes kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def make_tools(names: Sequence[str], server: Server, work: Path) -> tuple[Tool, ...]:
    tools: list[Tool] = []
    for name in names:
        if name == "mailrules":
            mailrules = Mailrules(server, work)
            mailrules.write_accounts()
            tools.append(mailrules)
        else:
            tools.append(Imapfilter(server, work))
    return tuple(tools)


def missing_program(tool_names: Sequence[str]) -> str | None:
    """Why a program the benchmark runs is not there, or None."""
    needed = {GNU_TIME: "time", **({IMAPFILTER: "imapfilter"} if "imapfilter" in tool_names else {})}
    for path, package in needed.items():
        if not Path(path).exists():
            return f"{path} not found: install Debian's {package}"
    return None


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated mailbox sizes (default 1000,10000)")
    parser.add_argument("--large", action="store_true", help=f"add a {LARGE:,}-message mailbox (slow)")
    parser.add_argument("--repeat", type=int, default=3, help="repeats per size; the table shows medians (default 3)")
    parser.add_argument("--tools", default="mailrules,imapfilter", help="comma-separated: mailrules, imapfilter")
    parser.add_argument("--seed", type=int, default=1, help="the mailbox generator's seed")
    parser.add_argument("--no-readme", action="store_true", help="print the results only; leave README.md alone")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, mailboxes)")
    args = parser.parse_args(argv)
    try:
        args.size_list = sorted({int(text) for text in args.sizes.split(",") if text.strip()} |
                                ({LARGE} if args.large else set()))
    except ValueError:
        parser.error(f"--sizes {args.sizes!r} is not a comma-separated list of numbers")
    args.tool_list = [name.strip() for name in args.tools.split(",") if name.strip()]
    unknown = set(args.tool_list) - {"mailrules", "imapfilter"}
    if unknown or not args.tool_list:
        parser.error(f"--tools takes mailrules and/or imapfilter, not {args.tools!r}")
    if args.repeat < 1 or not args.size_list or min(args.size_list) < 1:
        parser.error("--repeat and every size must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    reason = missing_reason() or missing_program(args.tool_list)
    if reason is not None:
        print(f"benchmarks: {reason}", file=sys.stderr)
        return 2
    results: list[report.Measured] = []
    notes: list[str] = []
    with bench_environment(args.tool_list, args.seed, args.keep) as bench:
        versions = {tool.name: tool.version() for tool in bench.tools} | {"Dovecot": dovecot_version()}
        for size in args.size_list:
            measured, note = measure_size(bench, size, args.repeat)
            results += measured
            notes.append(note)
    text = report.render_results(report.render_table(report.summarize(results)), report.render_commands(results),
                                 "\n".join(notes), versions, args.repeat, command_line(argv))
    print(text)
    if not args.no_readme:
        report.update_readme(BENCH_DIR / "README.md", text)
    failed = [item for item in results if item.problem]
    for item in failed:
        print(f"FAILED {item.size} {item.tool} {item.phase} repeat {item.repeat + 1}: {item.problem}", file=sys.stderr)
    return 1 if failed else 0


def dovecot_version() -> str:
    proc = subprocess.run(["dovecot", "--version"], capture_output=True, text=True, timeout=60)
    return proc.stdout.strip() or "unknown"


def command_line(argv: Sequence[str] | None) -> str:
    words = sys.argv[1:] if argv is None else list(argv)
    return shlex.join(["python", "benchmarks/run.py", *words])


if __name__ == "__main__":
    sys.exit(main())
