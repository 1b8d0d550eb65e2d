"""benchmarks/aae_mnist.py: a longer budget continues a shorter run, and s / epoch survives resumes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import aae_mnist  # noqa: E402


def write_metrics(run_dir: Path, records: list[dict]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_seconds_per_epoch_pools_the_segments_of_a_resumed_run(tmp_path):
    # First process: steps 10..100 in 9 s (0.1 s/step). Second, resumed at step 100: the clock
    # restarts; steps 110..200 in 27 s (0.3 s/step). Evaluation lines are ignored.
    first = [{"step": s, "time": s / 10} for s in range(10, 101, 10)]
    second = [{"step": s, "time": (s - 100) * 0.3} for s in range(110, 201, 10)]
    write_metrics(tmp_path, first + [{"kind": "eval", "step": 100, "time": 50.0}] + second)
    assert abs(aae_mnist.seconds_per_epoch(tmp_path, steps_per_epoch=100) - 20.0) < 1e-9  # 36 s / 180 steps
    write_metrics(tmp_path, first)
    assert abs(aae_mnist.seconds_per_epoch(tmp_path, steps_per_epoch=100) - 10.0) < 1e-9


def test_shorter_run_picks_the_longest_shorter_one_with_checkpoints(tmp_path):
    for tag in ("semi-100-e10-s0", "semi-100-e50-s0", "semi-100-e80-s1", "semi-1000-e60-s0"):
        (tmp_path / tag / "checkpoints").mkdir(parents=True)
    (tmp_path / "semi-100-e70-s0").mkdir()  # no checkpoints: not a run to continue
    assert aae_mnist.shorter_run(tmp_path, "semi-100", 150, 0) == tmp_path / "semi-100-e50-s0"
    assert aae_mnist.shorter_run(tmp_path, "semi-100", 50, 0) == tmp_path / "semi-100-e10-s0"
    assert aae_mnist.shorter_run(tmp_path, "semi-100", 10, 0) is None
    assert aae_mnist.shorter_run(tmp_path, "semi-1000", 100, 0) == tmp_path / "semi-1000-e60-s0"
