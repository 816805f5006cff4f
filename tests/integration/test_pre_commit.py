"""The pre-commit hooks this repository publishes, run on a sample rules repository.

``pre-commit try-repo`` installs the hooks' environment with pip, so it needs the
package index; without pre-commit or the network that test is skipped, and the
hooks' own commands are still run exactly as the manifest writes them.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.cli import run_cli

REPO = Path(__file__).resolve().parents[2]

RULES = """\
version: 1
rules:
  - name: github
    when: {from: {domain: github.com}}
    then: [{move: Notifications}]
"""

TESTS = """\
rules: ../rules.yaml
cases:
  - name: github leaves the inbox
    headers: {From: notifications@github.com, Subject: PR}
    body: hi
    expect: {folders: [Notifications]}
"""


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    repo = tmp_path / "rules-repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "rules.yaml").write_text(RULES)
    (repo / "tests" / "rules.test.yaml").write_text(TESTS)
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@example.com")
    _git(repo, "config", "user.name", "t")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "rules")
    return repo


def _hooks() -> dict[str, dict[str, object]]:
    return {hook["id"]: hook for hook in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())}


def test_the_manifest_names_both_hooks_and_they_check_the_whole_rule_set() -> None:
    hooks = _hooks()
    assert set(hooks) == {"mailrules-validate", "mailrules-test"}
    for hook in hooks.values():
        assert hook["language"] == "python" and str(hook["entry"]).startswith("mailrules ")
        assert hook["pass_filenames"] is False  # one include changing can break a rule elsewhere


@pytest.mark.parametrize("hook_id", ["mailrules-validate", "mailrules-test"])
def test_each_hook_command_passes_on_good_rules_and_fails_on_broken_ones(
        sample: Path, hook_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    hook = _hooks()[hook_id]
    command = shlex.split(str(hook["entry"]))[1:] + [str(arg) for arg in hook["args"]]  # type: ignore[union-attr]
    monkeypatch.chdir(sample)
    good = run_cli(command)
    assert good.code == 0, good.output
    (sample / "rules.yaml").write_text(RULES.replace("move: Notifications", "mvoe: Notifications"))
    bad = run_cli(command)
    assert bad.code == 2 and "rules.yaml:5:" in bad.output, bad.output


@pytest.mark.slow
def test_pre_commit_try_repo_runs_both_hooks(sample: Path, tmp_path: Path) -> None:
    if shutil.which("pre-commit") is None:
        pytest.skip("pre-commit is not installed")
    env = os.environ | {"PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}

    def try_repo() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["pre-commit", "try-repo", str(REPO), "--all-files"], cwd=sample, env=env,
                              capture_output=True, text=True, timeout=600)

    passed = try_repo()
    if passed.returncode != 0 and "Installing environment" in passed.stdout and "mailrules validate" not in passed.stdout:
        pytest.skip(f"the hooks' environment could not be installed (no package index?): {passed.stdout[-300:]}")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "mailrules validate" in passed.stdout and "mailrules test" in passed.stdout
    (sample / "tests" / "rules.test.yaml").write_text(TESTS.replace("[Notifications]", "[INBOX]"))
    failed = try_repo()
    assert failed.returncode == 1, failed.stdout
    assert "mailrules test" in failed.stdout and "Failed" in failed.stdout
    assert "folders: expected ['INBOX'], got ['Notifications']" in failed.stdout
