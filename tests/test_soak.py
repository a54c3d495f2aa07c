"""CI smoke of the soak benchmark (bench/bench_soak.py): 10 s of mixed load on a real server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_short_soak_has_no_errors_and_flat_memory(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    cmd = [sys.executable, str(ROOT / "bench" / "bench_soak.py"), "--duration", "10", "--warmup", "20"]
    cmd += ["--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    result = json.loads(out.read_text())
    assert result["requests"] > 50, done.stdout + done.stderr
    assert result["errors"] == 0, result["error_samples"]
    assert result["rss_growth"] < 0.10, result["rss_mb"]
    assert done.returncode == 0, done.stdout + done.stderr
