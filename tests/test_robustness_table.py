"""The bad-input table of ``benchmarks/robustness.py`` runs in the suite: no crash, nothing lost."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "robustness.py"


@pytest.mark.timeout(600)
def test_every_bad_input_is_a_result_or_a_one_line_error(tmp_path):
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--json"], capture_output=True, text=True, cwd=tmp_path,
        timeout=590,
    )  # fmt: skip
    table, _, rows_json = run.stdout.partition("\n[")
    assert run.returncode == 0, table + run.stderr[-2000:]
    rows = json.loads("[" + rows_json)
    bad = [r for r in rows if r["outcome"] == "crash" or r["files_lost"]]
    assert not bad, bad
    assert len(rows) >= 100
