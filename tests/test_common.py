"""bench/common.py's result files: two runs that finish in the same minute keep both results."""
from __future__ import annotations

import json

from tiny import bench_script


def test_results_written_in_the_same_minute_do_not_overwrite_each_other(tmp_path, capsys):
    common = bench_script("common")
    first = common.save_result("explain-agreement", {"model": "en-de"}, "| en-de |\n", results=tmp_path)
    second = common.save_result("explain-agreement", {"model": "de-en"}, "| de-en |\n", results=tmp_path)
    assert first != second and second.name.startswith(first.name) and second.name.endswith("-2")
    assert json.loads(first.with_suffix(".json").read_text()) == {"model": "en-de"}
    assert json.loads(second.with_suffix(".json").read_text()) == {"model": "de-en"}
    assert second.with_suffix(".md").read_text() == "| de-en |\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [first.name + ".json", first.name + ".md", second.name + ".json", second.name + ".md"])
