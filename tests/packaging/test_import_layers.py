"""The layers of docs/architecture.md hold: `lint-imports` checks the contracts in .importlinter, and an import
that breaks one (upward, a stage reaching for its orchestrator, I/O in the pure core) fails the check."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)  # ahead of the installed (editable) kubemeter
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def test_the_import_contracts_hold() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("module", "statement", "contract", "chain"),
    [
        # upward: the pure core reaching for the loop that drives it
        ("compute/rates.py", "from kubemeter.loop import PolicyLoop", "Each layer imports only from the layers below",
         "kubemeter.compute.rates -> kubemeter.loop"),
        # a stage importing its orchestrator (publish.status used to take CycleReport from loop)
        ("publish/status.py", "from kubemeter.app import Runtime", "Each layer imports only from the layers below",
         "kubemeter.publish.status -> kubemeter.app"),
        # two stages of one layer are independent
        ("scrape/client.py", "from kubemeter.watch.model import ClusterModel",
         "Each layer imports only from the layers below", "kubemeter.scrape.client -> kubemeter.watch.model"),
        ("compute/window.py", "import kubernetes", "do no I/O", "kubemeter.compute.window -> kubernetes"),
    ],
)
def test_an_import_against_the_layers_breaks_the_contract(
    tmp_path: Path, module: str, statement: str, contract: str, chain: str
) -> None:
    copy = tmp_path / "kubemeter"
    shutil.copytree(REPO / "operator" / "kubemeter", copy, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / ".importlinter", tmp_path)
    with (copy / module).open("a") as source:
        source.write(f"\n{statement}  # the deliberate violation\n")
    result = lint_imports(tmp_path, pythonpath=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    broken = [line for line in result.stdout.splitlines() if line.endswith(" BROKEN")]
    assert any(contract in line for line in broken), result.stdout
    assert chain in result.stdout, result.stdout
