"""benchmarks/pretraining_study.py: the quick grid runs every variant end to end and writes its tables and plots;
the steps-to-baseline arithmetic matches a direct computation."""

import argparse
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import pretraining_study as study  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_the_crossing_is_interpolated_between_evaluations():
    curve = {"step": [0, 10, 20, 30], "seconds": [0.0, 5.0, 10.0, 15.0], "mlm_loss": [8.0, 6.0, 5.0, 4.5]}
    # 5.5 lies halfway between the evaluations at steps 10 (6.0) and 20 (5.0)
    assert study.first_crossing(curve, 5.5, "step") == pytest.approx(15.0)
    assert study.first_crossing(curve, 5.5, "seconds") == pytest.approx(7.5)
    assert study.first_crossing(curve, 4.0, "step") is None


def test_ratios_compare_each_seed_with_the_baseline_run_of_that_seed(monkeypatch):
    monkeypatch.setitem(study.VARIANTS, "faster", study.Variant("sharing=none"))
    baseline = {"step": [0, 10, 20], "seconds": [0.0, 4.0, 8.0], "mlm_loss": [8.0, 6.0, 5.0]}
    faster = {"step": [0, 10, 20], "seconds": [0.0, 2.0, 4.0], "mlm_loss": [8.0, 5.0, 4.0]}
    never = {"step": [0, 10, 20], "seconds": [0.0, 4.0, 8.0], "mlm_loss": [8.0, 7.0, 6.0]}
    table = study.to_baseline({"bert": {0: baseline, 1: baseline}, "faster": {0: faster, 1: never}})
    assert table["bert"] == {"steps": [1.0, 1.0], "seconds": [1.0, 1.0], "not_reached": 0}
    assert table["faster"]["steps"] == [pytest.approx(10 / 20)] and table["faster"]["not_reached"] == 1
    assert table["faster"]["seconds"] == [pytest.approx(2.0 / 8.0)]


def test_the_quick_study_runs_every_variant_and_writes_its_tables_and_plots(tmp_path):
    arguments = argparse.Namespace(output_dir=str(tmp_path), quick=True, variants=None, seeds=None, train_file=None,
                                   validation_file=None)
    results = study.run_study(arguments)
    assert results["variants"] == list(study.VARIANTS)
    budget = study.BUDGETS["quick"]
    for name in study.VARIANTS:
        run = results["runs"][name]
        assert 0.0 <= run["probe_accuracy"][0] <= 1.0 and 0.0 <= run["tasks"]["sst2"][0] <= 1.0
        curve = run["curves"][budget.seeds[0]]
        assert curve["step"] == [0, 3, 6] and curve["seconds"][0] == 0.0 and curve["seconds"][-1] > 0
        assert (run["final_mlm_loss"] != []) == (study.VARIANTS[name].objective == "mlm")
        assert (tmp_path / "finetune" / "sst2" / name / "seed0" / "all_results.json").is_file()
    assert results["to_baseline"]["bert"]["steps"] == [1.0]
    # each run records the command that reproduces it on its own, not the study's
    record = json.loads((tmp_path / "pretrain" / "tupe-r" / "seed0" / "litebert_run.json").read_text())
    assert record["command"].startswith("litebert-pretrain --objective mlm --config_overrides")
    assert "relative_attention_num_buckets=32" in record["command"]
    assert "electra" not in results["to_baseline"] and "mc" not in results["to_baseline"]
    tables = (tmp_path / "study_tables.md").read_text()
    assert all(f"| {name} |" in tables for name in study.VARIANTS)
    assert "n/a (no MLM loss)" in tables and "Compute, wall-clock" in tables
    for plot in ("curves_steps.png", "curves_seconds.png"):
        assert (tmp_path / plot).read_bytes().startswith(PNG_SIGNATURE)
    # started again, the study reuses every finished run: no weights are written again
    weights = sorted(tmp_path.glob("*/**/model.safetensors"))
    written = {path: path.stat().st_mtime_ns for path in weights}
    again = study.run_study(arguments)
    assert again["runs"] == results["runs"]
    # the grid's compute is read from the runs' own records, so a resumed study still counts every run once
    assert again["compute_seconds"] == results["compute_seconds"] and results["compute_seconds"]["pretraining"] > 0
    assert {path: path.stat().st_mtime_ns for path in weights} == written and len(weights) >= 20
