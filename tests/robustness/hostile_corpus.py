"""Malformed mail, built at test time (the big ones) or read from tests/fixtures/hostile (the small ones).

Every generator is deterministic, so a failure names a message that can be rebuilt.
The normal messages are the control group: the rules must still find them however
broken their neighbours are.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "hostile"
MB = 2**20

HEAD = (
    b"Received: from mx.example.net by mx.example.org; Thu, 19 Nov 2026 14:00:00 +0000\r\n"
    b"Date: Thu, 19 Nov 2026 14:00:00 +0000\r\nFrom: Hostile <hostile@example.net>\r\nTo: u@example.com\r\n"
)


def _message(name: str, headers: bytes, body: bytes) -> bytes:
    return HEAD + b"Subject: hostile " + name.encode() + b"\r\nMessage-ID: <" + name.encode() + b"@hostile.example>\r\n" \
        + headers + b"\r\n" + body


def truncated_base64() -> bytes:
    part = b"--b1\r\nContent-Type: application/pdf; name=x.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    return _message("truncated-base64", b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n",
                    part + b"JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFIvRmlsdGVyIC9GbGF0ZURlY29kZT4+Cn")


def boundary_never_closed() -> bytes:
    body = b"--open\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n--open\r\nContent-Type: text/html\r\n\r\n<p>second"
    return _message("boundary-never-closed", b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=open\r\n",
                    body)


def nested_multipart(depth: int) -> bytes:
    opening = b"".join(b"--l%d\r\nContent-Type: multipart/mixed; boundary=l%d\r\n\r\n" % (i, i + 1) for i in range(depth))
    closing = b"".join(b"\r\n--l%d--\r\n" % i for i in reversed(range(depth + 1)))
    inner = b"--l%d\r\nContent-Type: text/plain\r\n\r\nthe bottom of the well" % depth
    return _message(f"nested-{depth}", b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=l0\r\n",
                    opening + inner + closing)


def huge_header_line() -> bytes:
    return _message("huge-header-line", b"X-Long: " + b"a" * MB + b"\r\n", b"body after a 1 MB header line\r\n")


def huge_subject() -> bytes:
    return HEAD + b"Subject: " + b"=?utf-8?q?" + b"=C3=A9" * (MB // 6) + b"?=\r\n\r\nbody\r\n"


def many_headers() -> bytes:
    return _message("many-headers", b"".join(b"X-H%d: v\r\n" % i for i in range(20_000)), b"body\r\n")


def many_parts() -> bytes:
    parts = b"".join(b"--m\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(5_000))
    return _message("many-parts", b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=m\r\n",
                    parts + b"--m--\r\n")


def nul_bytes() -> bytes:
    return _message("nul-bytes", b"X-Nul: a\x00b\r\n", b"before\x00after\r\n\x00\x00\x00\r\n")


def invalid_charsets() -> bytes:
    headers = (b"Content-Type: text/plain; charset=x-no-such-charset\r\nContent-Transfer-Encoding: 8bit\r\n"
               b"X-Enc: =?x-bogus?B?////?= =?utf-8?B?not*base64?= =?utf-8?Q?=ZZ?= =?iso-2022-jp?B?GyRCJEgbKEI?=\r\n"
               b"Keywords: =?utf-7?Q?+AGEAYgBj-?=\r\n")
    return _message("invalid-charsets", headers, b"\xff\xfe\xc3\x28 text in no charset\r\n")


def wrong_utf8_in_utf8_part() -> bytes:
    headers = b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"
    return _message("bad-qp-utf8", headers, b"<p>=FF=FE=C3=28 broken =\r\n=ZZ =\r\n<b>unterminated <script>while(1)\r\n")


def eight_bit_headers() -> bytes:
    return (b"From: J\xf6rg M\xfcller <j\xf6rg@ex\xe4mple.net>\r\nTo: \xe7\x94\xb0\xe4\xb8\xad <u@example.com>\r\n"
            b"Subject: Gr\xfc\xdfe \xe2\x82\xac \xff\r\nMessage-ID: <eight-bit@hostile.example>\r\n"
            b"Date: Thu, 19 Nov 2026 14:00:00 +0000\r\n\r\n8-bit body \xe9\r\n")


def missing_headers() -> bytes:
    return b"\r\njust a body, no headers at all\r\n"


def header_only() -> bytes:
    return b"Subject: hostile header-only\r\nFrom: a@example.net"


def garbage(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def absurd_dates() -> bytes:
    headers = (b"Date: Fri, 31 Feb 99999 25:61:61 +9999\r\nResent-Date: yesterday\r\n"
               b"Received: from x by y; not a date at all\r\n")
    return _message("absurd-dates", headers, b"body\r\n")


def address_soup() -> bytes:
    many = b", ".join(b"user%d@example.net" % i for i in range(5_000))
    headers = (b"Cc: " + many + b"\r\nReply-To: \"<<<@@@>>>\" <@@@>, (comment (nested (deep)), ;;;\r\n"
               b"Sender: undisclosed-recipients:;\r\nBcc: \"unbalanced <a@b\r\n")
    return _message("address-soup", headers, b"body\r\n")


def bad_attachment_names() -> bytes:
    part = (b"--a\r\nContent-Type: application/octet-stream; name*=bogus''%FF%FE\r\n"
            b"Content-Disposition: attachment; filename*0*=x-bogus''%ZZ; filename*1=\"\x00\"\r\n"
            b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n!!!!\r\nend\r\n--a--\r\n")
    return _message("bad-attachment-names", b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=a\r\n", part)


def deep_html() -> bytes:
    html = b"<div>" * 50_000 + b"deep text" + b"</span>" * 10 + b"<!--" + b"<style>" * 1000 + b"&#99999999999;&bogus;"
    return _message("deep-html", b"Content-Type: text/html; charset=utf-8\r\n", html + b"\r\n")


def self_enclosed_rfc822() -> bytes:
    inner = _message("inner", b"Content-Type: message/rfc822\r\n", b"Subject: truncated inner\r\nContent-Type: multip")
    return _message("rfc822-nest", b"Content-Type: message/rfc822\r\n", inner * 50)


def lf_only_and_bare_cr() -> bytes:
    return _message("line-ends", b"X-Bare: one\rtwo\r\n", b"lf only\nlines\n\rbare cr\r\r\n").replace(b"\r\n", b"\n")


GENERATED: dict[str, Callable[[], bytes]] = {
    "truncated-base64": truncated_base64,
    "boundary-never-closed": boundary_never_closed,
    "nested-100": lambda: nested_multipart(100),
    "nested-1000": lambda: nested_multipart(1000),
    "huge-header-line": huge_header_line,
    "huge-encoded-subject": huge_subject,
    "many-headers": many_headers,
    "many-parts": many_parts,
    "nul-bytes": nul_bytes,
    "invalid-charsets": invalid_charsets,
    "bad-qp-utf8": wrong_utf8_in_utf8_part,
    "eight-bit-headers": eight_bit_headers,
    "missing-headers": missing_headers,
    "header-only": header_only,
    "garbage-64k": lambda: garbage(1, 64 * 1024),
    "garbage-1m": lambda: garbage(2, MB),
    "empty": lambda: b"",
    "absurd-dates": absurd_dates,
    "address-soup": address_soup,
    "bad-attachment-names": bad_attachment_names,
    "deep-html": deep_html,
    "rfc822-nest": self_enclosed_rfc822,
    "line-ends": lf_only_and_bare_cr,
}


def hostile_messages() -> dict[str, bytes]:
    """Every malformed message: the generated ones and the small files in tests/fixtures/hostile."""
    corpus = {name: make() for name, make in GENERATED.items()}
    corpus.update({path.stem: path.read_bytes() for path in sorted(FIXTURES.glob("*.eml"))})
    return corpus


def normal_message(number: int) -> bytes:
    """A well-formed report the rules in the hostile tests file away."""
    return (
        f"Received: from mx.example.net by mx.example.org; Thu, 19 Nov 2026 14:{number % 60:02d}:00 +0000\r\n"
        f"Date: Thu, 19 Nov 2026 14:{number % 60:02d}:00 +0000\r\nFrom: Reports <reports@example.org>\r\n"
        f"To: u@example.com\r\nSubject: routine report {number}\r\nMessage-ID: <report-{number}@example.org>\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\nAll systems nominal ({number}).\r\n"
    ).encode()
