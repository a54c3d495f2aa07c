"""Smoke run of the load harness (bench/harness.py --quick): both servers, the floor, the report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_harness_run_serves_both_apps_without_errors(tmp_path: Path) -> None:
    cmd = [sys.executable, str(ROOT / "bench" / "harness.py"), "--quick", "--tool", "httpx", "--out", str(tmp_path)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    res = json.loads((tmp_path / "harness.json").read_text())
    assert set(res["cases"]) == {"TiTiler plain NAIP", "ours otsu NAIP"}
    for name, case in res["cases"].items():
        assert set(case["load"]) == {"1", "4"}
        for level in case["load"].values():
            assert level["errors"] == 0, (name, level)
            assert level["requests"] > 0
            assert 0 < level["median_ms"] <= level["p95_ms"] <= level["p99_ms"]
            assert level["rss_mb"] > 20
        floor = res["floor"][name]
        assert floor["total"] > 0
        assert floor["read"] > 0 and floor["encode"] > 0
    assert res["floor"]["ours otsu NAIP"]["algorithm"] > 0
    ours = res["cases"]["ours otsu NAIP"]
    assert ours["anchor"] == "TiTiler plain NAIP"
    assert ours["vs_anchor"] > 0 and ours["served_over_floor"] > 0
    assert res["soak"]["requests"] >= 50 and res["soak"]["errors"] == 0
    assert set(res["revalidation"]["statuses"]) == {"304"}  # every revalidation of an unchanged tile
    assert res["machine"]["cores"] >= 1 and len(res["load_start"]) == 3

    md = (tmp_path / "harness.md").read_text()
    assert "| ours otsu NAIP |" in md and "| TiTiler plain NAIP |" in md
    assert "## Targets" in md
