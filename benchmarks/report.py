"""Turning measured samples into the results table and writing it into benchmarks/README.md."""

from __future__ import annotations

import os
import platform
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.measure import Sample, median
from benchmarks.reference import Outcome
from benchmarks.tools import PHASES, Phase

START, END = "<!-- results:start -->", "<!-- results:end -->"
BASELINE = "mailrules"


@dataclass(frozen=True, slots=True)
class Measured:
    """One tool's run in one phase of one repeat, and whether its result was right."""

    size: int
    tool: str
    phase: Phase
    repeat: int
    sample: Sample
    problem: str | None  # None when exit status and end state were as expected


@dataclass(frozen=True, slots=True)
class Row:
    size: int
    phase: Phase
    tool: str
    wall: float
    cpu: float
    rss_mib: float
    commands: str
    sent_kib: float
    received_kib: float
    ratio: float | None  # this tool's wall time / the baseline's, median over repeats
    status: str


def summarize(results: Sequence[Measured]) -> list[Row]:
    keys = dict.fromkeys((item.size, item.phase, item.tool) for item in results)
    ordered = sorted(keys, key=lambda key: (key[0], PHASES.index(key[1]), key[2] != BASELINE, key[2]))
    return [_row(results, *key) for key in ordered]


def _row(results: Sequence[Measured], size: int, phase: Phase, tool: str) -> Row:
    mine = [item for item in results if (item.size, item.phase, item.tool) == (size, phase, tool)]
    samples = [item.sample for item in mine]
    counts = sorted({sample.traffic.total_commands for sample in samples})
    problems = [item.problem for item in mine if item.problem]
    return Row(
        size, phase, tool,
        wall=median([s.process.wall for s in samples]),
        cpu=median([s.process.cpu for s in samples]),
        rss_mib=median([s.process.max_rss_kib for s in samples]) / 1024,
        commands=str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}",
        sent_kib=median([s.traffic.bytes_sent for s in samples]) / 1024,
        received_kib=median([s.traffic.bytes_received for s in samples]) / 1024,
        ratio=_ratio(results, mine),
        status="ok" if not problems else f"FAILED ×{len(problems)}",
    )


def _ratio(results: Sequence[Measured], mine: Sequence[Measured]) -> float | None:
    """Median over repeats of wall(tool) / wall(baseline) from the same repeat."""
    ratios = []
    for item in mine:
        base = [other for other in results if (other.size, other.phase, other.repeat, other.tool)
                == (item.size, item.phase, item.repeat, BASELINE) and not other.problem]
        if base and not item.problem:
            ratios.append(item.sample.process.wall / base[0].sample.process.wall)
    return median(ratios) if ratios else None


def render_table(rows: Iterable[Row]) -> str:
    lines = ["| messages | phase | tool | wall s | CPU s | peak RSS MiB | IMAP commands | sent KiB "
             "| received KiB | wall ÷ mailrules | check |",
             "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        ratio = "—" if row.ratio is None else f"{row.ratio:.2f}×"
        lines.append(f"| {row.size:,} | {row.phase} | {row.tool} | {row.wall:.2f} | {row.cpu:.2f} "
                     f"| {row.rss_mib:.0f} | {row.commands} | {row.sent_kib:,.0f} | {row.received_kib:,.0f} "
                     f"| {ratio} | {row.status} |")
    return "\n".join(lines)


def render_commands(results: Sequence[Measured]) -> str:
    """Which commands each tool sent in each phase (first repeat), largest counts first."""
    firsts = sorted((item for item in results if item.repeat == 0),
                    key=lambda item: (item.size, PHASES.index(item.phase), item.tool))
    lines = []
    for item in firsts:
        parts = ", ".join(f"{name} {count}" for name, count in item.sample.traffic.commands.most_common())
        lines.append(f"- {item.size:,} · {item.phase} · {item.tool}: {parts or '(none)'}")
    return "\n".join(lines)


def render_findings(size: int, spec: dict[str, Outcome], other: dict[str, Outcome]) -> str:
    """How the imapfilter reading of the rules files messages differently from the spec."""
    moves: Counter[tuple[str, str]] = Counter()
    for message_id, wanted in spec.items():
        got = other[message_id]
        if (wanted.folder, wanted.flags) != (got.folder, got.flags):
            moves[(_filing(wanted), _filing(got))] += 1
    if not moves:
        return f"- {size:,} messages: imapfilter's reading of the rules files every message as the spec does."
    lines = [f"- {size:,} messages: {sum(moves.values())} filed differently by imapfilter:"]
    lines += [f"  - {count} × spec: {want}; imapfilter: {got}" for (want, got), count in moves.most_common()]
    return "\n".join(lines)


def _filing(outcome: Outcome) -> str:
    where = outcome.folder or "deleted"
    return f"{where} (rule `{outcome.filed_by}`)" if outcome.filed_by else f"{where} (no rule)"


# ---------------------------------------------------------------- environment


def machine() -> str:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (f"{os.cpu_count()} CPUs ({cpu_model()}), {memory_gib():.0f} GiB RAM, {platform.platform()}; "
            f"load average when the results were written: {load}")


def cpu_model() -> str:
    text = _read("/proc/cpuinfo")
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    return match.group(1).strip() if match else platform.processor() or "unknown CPU"


def memory_gib() -> float:
    match = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.M)
    return int(match.group(1)) / 1024 / 1024 if match else 0.0


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def render_results(table: str, commands: str, findings: str, versions: dict[str, str], repeat: int,
                   command_line: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    version_list = ", ".join(f"{name}: {text}" for name, text in versions.items())
    return (f"Measured {stamp} with `{command_line}`; medians of {repeat} repeat(s).\n\n"
            f"- Versions: {version_list}\n- Machine: {machine()}\n\n{table}\n\n"
            f"IMAP commands per run (first repeat):\n\n{commands}\n\n"
            f"Where imapfilter's reading of the rules differs from the spec:\n\n{findings}\n")


def update_readme(path: Path, results: str) -> None:
    """Replace the text between the result markers (appending them when missing)."""
    text = path.read_text() if path.exists() else ""
    block = f"{START}\n{results}{END}"
    if START in text and END in text:
        text = text[:text.index(START)] + block + text[text.index(END) + len(END):]
    else:
        text = f"{text.rstrip()}\n\n{block}\n"
    path.write_text(text)
