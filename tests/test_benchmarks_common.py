"""benchmarks/common.py: the one way every benchmark adds a row to BENCHMARKS.md."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from common import append_row, commit, cpu_model, machine  # noqa: E402

ONE = "## One\n\n| a | b |\n|---|---|"
TWO = "## Two\n\nIntro.\n\n| c |\n|---|"
SUB = "### Sub\n\n| d |\n|---|"


def test_rows_go_after_the_last_row_of_their_own_table(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    append_row(path, ONE, "| 1 | 2 |")
    append_row(path, TWO, "| x |")
    append_row(path, ONE, "| 3 | 4 |")
    append_row(path, SUB, "| s |")
    append_row(path, TWO, "| y |")
    append_row(path, TWO, "| z |", unless="| y |")
    assert path.read_text() == (
        "# Benchmarks\n\n## One\n\n| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n\n"
        "## Two\n\nIntro.\n\n| c |\n|---|\n| x |\n| y |\n\n### Sub\n\n| d |\n|---|\n| s |\n")


def test_a_section_that_lost_its_table_gets_the_head_back(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\n## One\n\nNotes.\n\n## Two\n\n| c |\n|---|\n")
    append_row(path, ONE, "| 1 | 2 |")
    assert path.read_text() == (
        "# Benchmarks\n\n## One\n\nNotes.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n## Two\n\n| c |\n|---|\n")


def test_header_must_have_a_heading_and_a_table_head(tmp_path):
    with pytest.raises(ValueError):
        append_row(tmp_path / "B.md", "| a |\n|---|", "| 1 |")
    with pytest.raises(ValueError):
        append_row(tmp_path / "B.md", "## One\n\nno table", "| 1 |")


def test_machine_and_commit_describe_this_checkout():
    assert "cores" in machine() and "threads" in machine()
    assert "(3 used)" in machine(3)
    assert cpu_model() in machine()  # the model name where /proc/cpuinfo gives one, e.g. "x86_64 AMD EPYC"
    assert commit()
