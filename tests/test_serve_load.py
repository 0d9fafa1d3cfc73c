"""``benchmarks/serve_load.py`` in the suite, small: two clients, good and hostile inputs mixed;
every good input answered, every hostile one a one-line message, the server alive, disk bounded."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "serve_load.py"


@pytest.mark.timeout(300)
def test_the_page_under_concurrent_good_and_hostile_requests(tmp_path):
    pytest.importorskip("gradio_client", reason="the serve extra (gradio) is not installed")
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--clients", "2", "--requests", "10", "--time-limit",
         "200", "--json"], capture_output=True, text=True, cwd=tmp_path, timeout=290,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])["summary"]
    assert summary["sent"] == 20 and summary["served"] == 10 and summary["errors_shown"] == 10
    assert summary["failures"] == 0 and summary["wrong"] == 0 and summary["server_alive"]
    assert summary["peak_temp_mib"] < 50
