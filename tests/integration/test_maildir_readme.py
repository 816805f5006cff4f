"""The README's first command, run literally as a new user on Debian or Ubuntu would.

A temp copy of the checkout, the distribution's own Python (``/usr/bin/python3``, which
PEP 668 marks externally managed) first on ``PATH``, no virtualenv or ``PYTHONPATH`` of
ours: the command must install mailrules and print the plan for the bundled sample
Maildir, in one go.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3")
IGNORED = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", "build", ".pytest_cache",
                                 ".hypothesis", "work")


def first_command(readme: str) -> str:
    """The single shell command in the README's "Try it" section."""
    section = readme.split("## Try it", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the Try it section has no sh block"
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(lines) == 1, f"the first set-up step must be one command, not {len(lines)} lines"
    return lines[0]


def _require_externally_managed_python() -> None:
    if not SYSTEM_PYTHON.exists() or not glob.glob("/usr/lib/python3*/EXTERNALLY-MANAGED"):
        pytest.skip("needs a Debian/Ubuntu system Python marked EXTERNALLY-MANAGED (PEP 668)")
    probe = subprocess.run([str(SYSTEM_PYTHON), "-c", "import ensurepip, venv"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("the system Python lacks venv/ensurepip (Debian's python3-venv)")


def test_readme_command_is_one_line_that_does_not_pip_install_into_the_system_python() -> None:
    command = first_command((REPO / "README.md").read_text(encoding="utf-8"))
    steps = [step.strip() for step in command.split("&&")]
    bare_pip = [step for step in steps if re.match(r"(pip3?|python3? -m pip) install", step)]
    assert not bare_pip, f"{bare_pip} installs into the system Python, which Debian 12 / Ubuntu 24.04 refuse"
    assert any(step.startswith(("python3 -m venv", "pipx install")) for step in steps), command
    assert "--maildir examples/Maildir" in steps[-1]


@pytest.mark.slow
def test_readme_first_command_works_on_a_fresh_checkout_with_the_system_python(tmp_path: Path) -> None:
    _require_externally_managed_python()
    checkout = tmp_path / "mailrules"
    shutil.copytree(REPO, checkout, ignore=IGNORED)
    command = first_command((checkout / "README.md").read_text(encoding="utf-8"))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    env.update({name: value for name, value in os.environ.items()
                if name.startswith(("PIP_INDEX", "PIP_EXTRA_INDEX", "PIP_TRUSTED", "HTTP_PROXY", "HTTPS_PROXY",
                                    "http_proxy", "https_proxy", "NO_PROXY", "no_proxy"))})
    proc = subprocess.run(["bash", "-c", command], cwd=checkout, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, f"`{command}` exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert f"Plan for maildir:{checkout / 'examples' / 'Maildir'}" in proc.stdout
    assert "move to Notifications/GitHub" in proc.stdout
    assert "`mailrules run` does exactly this." in proc.stdout
    assert (checkout / ".venv" / "bin" / "mailrules").exists()
