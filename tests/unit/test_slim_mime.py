"""Large messages are scanned without their attachments' content: same answers, less memory."""

from __future__ import annotations

import random
import tracemalloc
from pathlib import Path

import pytest

import mailrules.message as message
from benchmarks.memory import large_message
from mailrules.message import slim_mime, summarise_mime

ROOT = Path(__file__).resolve().parents[2]
CORPUS = sorted([*(ROOT / "tests" / "fixtures").rglob("*.eml"), *(ROOT / "examples").rglob("*.eml"),
                 *(ROOT / "tests" / "conformance" / "messages").rglob("*.eml"),
                 *(ROOT / "examples" / "Maildir").rglob("*.sample*")])


@pytest.mark.parametrize("path", CORPUS, ids=lambda path: str(path.relative_to(ROOT)))
def test_slimming_changes_no_answer(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = path.read_bytes()
    whole = summarise_mime(raw, [])
    monkeypatch.setattr(message, "SLIM_ABOVE", 0)
    assert summarise_mime(raw, []) == whole


def test_the_corpus_has_attachments_to_slim() -> None:
    assert any(len(slim_mime(path.read_bytes())) < len(path.read_bytes()) for path in CORPUS)


def test_a_30_mb_message_is_scanned_in_a_fraction_of_the_memory() -> None:
    raw = large_message(0, 30 * 1024 * 1024, random.Random(1))
    tracemalloc.start()
    try:
        summary = summarise_mime(raw, [])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "needle in the haystack" in summary.body and summary.has_attachment
    assert peak < 4 * len(raw), f"{peak / 2**20:.0f} MB to scan a {len(raw) / 2**20:.0f} MB message"


def test_nested_parts_keep_their_text_and_lose_only_opaque_content() -> None:
    raw = (b'Content-Type: multipart/mixed; boundary="o"\r\n\r\npreamble\r\n--o\r\n'
           b'Content-Type: multipart/alternative; boundary="i"\r\n\r\n--i\r\nContent-Type: text/plain\r\n\r\n'
           b'plain words\r\n--i\r\nContent-Type: text/html\r\n\r\n<p>html words</p>\r\n--i--\r\n'
           b'--o\r\nContent-Type: image/png\r\nContent-Disposition: inline; filename="a.png"\r\n'
           b'Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n'
           b'--o\r\nContent-Type: text/plain\r\nContent-Disposition: attachment\r\n\r\nattached words\r\n'
           b'--o--\r\nepilogue\r\n')
    slim = slim_mime(raw)
    assert b"plain words" in slim and b"html words" in slim and b"epilogue" in slim
    assert b"iVBORw0KGgo" not in slim and b"attached words" not in slim
    assert summarise_mime(slim, []) == summarise_mime(raw, [])
