"""The package's public names: sorted, all importable, and nothing heavy imported up front."""

from __future__ import annotations

import subprocess
import sys

import mailrules


def test_every_exported_name_resolves() -> None:
    assert mailrules.__all__ == sorted(mailrules.__all__)
    for name in mailrules.__all__:
        assert getattr(mailrules, name) is not None


def test_importing_the_package_loads_no_parser_or_server_library() -> None:
    probe = "import sys, mailrules; print(sorted(m for m in ('yaml', 'jsonschema', 'jinja2', 'imapclient') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
