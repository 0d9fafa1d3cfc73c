"""The bad-input table of ``benchmarks/robustness.py`` runs in the suite: no crash, nothing lost."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import robustness  # noqa: E402


@pytest.mark.timeout(600)
def test_every_bad_input_is_a_result_or_a_one_line_error(tmp_path, monkeypatch):
    fixtures = robustness.build_fixtures(tmp_path)
    monkeypatch.chdir(tmp_path)
    rows = [
        robustness.run_case(case, tmp_path / f"case{i:03d}")
        for i, case in enumerate(robustness.all_cases(*fixtures))
    ]
    bad = [r for r in rows if r["outcome"] == "crash" or r["files_lost"]]
    assert not bad, bad
    assert len(rows) >= 100
