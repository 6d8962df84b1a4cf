"""The kill harness in small (benchmarks/kill_harness.py runs 20 kills for the recorded figures)."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_killed_builds_leave_the_previous_index_and_resume(tmp_path):
    out = tmp_path / "kills.md"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "kill_harness.py"), "--kills", "3", "--docs", "800",
                           "--seed", "1", "--out", str(out)], capture_output=True, text=True, timeout=2400)  # a hang guard
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = out.read_text()
    assert "0 failed checks" in table and table.count("| yes | yes |") == 3
