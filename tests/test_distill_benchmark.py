"""benchmarks/distill_sst2.py --quick: the teacher, every student trained both ways from one initialization, and the
results table, end to end on a few SST-2 sentences."""

import json
import sys
from pathlib import Path

from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import distill_sst2  # noqa: E402


def test_the_quick_run_trains_every_student_both_ways_and_reports_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["distill_sst2.py", "--quick", "--workdir", str(tmp_path)])
    distill_sst2.main()
    results = json.loads((tmp_path / "distill_results.json").read_text())
    names = ["teacher (all-MiniLM-L6-v2)"] + [f"{student}, {way}" for student in distill_sst2.STUDENTS
                                            for way in ("distilled", "fine-tuned")]
    assert list(results["models"]) == names
    teacher = results["models"][names[0]]
    assert teacher["speedup_vs_teacher"] == [1.0]
    for name in names[1:]:
        model = results["models"][name]
        assert 0.0 <= model["accuracy"] <= 1.0 and model["training_seconds"] > 0
        assert model["parameters"] < teacher["parameters"]
    # one shared block: the 6-application student is wider than the 4-layer one and still smaller
    shared, layered = (results["models"][f"{student}, distilled"]["parameters"] for student in
                       ("one block applied 6 times, H=384", "4 layers, H=256"))
    assert shared < layered
    # both ways start from the one saved initialization, and both moved away from it
    for student in distill_sst2.STUDENTS:
        root = tmp_path / distill_sst2.folder_name(student)
        initial = load_file(root / "initial" / "model.safetensors")
        for way in ("intermediate", "fine-tuned"):
            trained = load_file(root / way / "model.safetensors")
            assert trained.keys() == initial.keys()
            assert any(not trained[key].equal(initial[key]) for key in initial)
        # the intermediate stage trains the encoder alone; the prediction stage then trains the classifier too
        intermediate, distilled = (load_file(root / way / "model.safetensors") for way in ("intermediate", "distilled"))
        # the reported size is the saved weights' own count (a shared block is stored once)
        assert results["models"][f"{student}, distilled"]["parameters"] == sum(t.numel() for t in distilled.values())
        assert intermediate["classifier.weight"].equal(initial["classifier.weight"])
        assert not distilled["classifier.weight"].equal(intermediate["classifier.weight"])
    table = capsys.readouterr().out
    assert all(f"| {name} |" in table for name in names)
