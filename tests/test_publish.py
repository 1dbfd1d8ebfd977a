"""Publishing: the card a training run leaves, `litebert-publish` checks and upload, Trainer/model push_to_hub, and
loading the published folder with stock transformers in a process without litebert.

Uploads go to tests/fake_hub.py, an in-process FAKE of the Hub's upload API (these machines have no network); it
records what would have been sent. Everything else here runs the real code paths."""

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, EvalPrediction, Trainer, TrainingArguments

from litebert import LiteBertForSequenceClassification
from litebert.cli import glue, publish
from litebert.hub_cards import check_model_card
from litebert.parameters import parameter_counts
from litebert.remote_code import run_script_without_litebert
from litebert.trainer_callbacks import add_litebert_callbacks

from fake_hub import fake_hub_client

_TEXT_CLASSIFICATION = """
import json, sys
sys.modules["litebert"] = None
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
folder, sentences = sys.argv[1], json.loads(sys.argv[2])
tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True).eval()
with torch.no_grad():
    logits = model(**tokenizer(sentences, padding=True, return_tensors="pt")).logits
classify = pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu")
print(json.dumps({"class": type(model).__module__ + "." + type(model).__name__, "logits": logits.tolist(),
                  "labels": [prediction["label"] for prediction in classify(sentences)]}))
"""


def classify_without_litebert(folder: str | Path, sentences: list[str]) -> dict:
    """Load `folder` as stock transformers users do (AutoTokenizer, AutoModelForSequenceClassification with
    `trust_remote_code=True`) in a process that cannot import litebert; return the loaded class name, the logits
    for `sentences` (padded as one batch) and `pipeline("text-classification")`'s labels."""
    output = run_script_without_litebert(_TEXT_CLASSIFICATION, "text classification", folder, json.dumps(sentences))
    return json.loads(output)


SENTENCES = ["The cat sat on the mat.", "Paris is the capital of France, a country in Europe."]
DRY_RUN_DONE = "Dry run: nothing was uploaded and the folder was not changed"


@pytest.fixture(scope="module")
def rte_folder(tiny_model, shared_data, tmp_path_factory):
    """The output folder of a short litebert-glue run on real RTE data."""
    output = tmp_path_factory.mktemp("rte-run")
    glue.main([
        "--model_name_or_path", str(tiny_model), "--output_dir", str(output), "--task_name", "rte",
        "--data_dir", str(shared_data / "glue" / "RTE"), "--do_train", "--do_eval", "--max_steps", "3",
        "--max_train_samples", "24", "--max_eval_samples", "24", "--max_seq_length", "64",
        "--per_device_train_batch_size", "8", "--report_to", "none", "--use_cpu", "true", "--save_strategy", "no",
    ])
    return output


@pytest.fixture
def rte_copy(rte_folder, tmp_path):
    """A copy of the run folder that a test may damage."""
    return shutil.copytree(rte_folder, tmp_path / "copy")


def read_json(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_a_glue_run_leaves_a_card_with_its_results_and_command(rte_folder):
    card = check_model_card(rte_folder / "README.md")
    eval_results = read_json(rte_folder / "eval_results.json")
    [result] = card.data.eval_results
    assert (result.dataset_config, result.metric_type) == ("rte", "accuracy")
    assert result.metric_value == eval_results["eval_accuracy"]
    run_info = read_json(rte_folder / "litebert_run.json")
    assert run_info["command"].startswith("litebert-glue --model_name_or_path ")
    assert "--task_name rte" in run_info["command"] and run_info["command"] in card.text
    assert run_info["base_model"] is None  # a local folder is no Hub id
    assert read_json(rte_folder / "config.json")["finetuning_task"] == "rte"


def test_dry_run_approves_the_run_folder_and_uploads_nothing(rte_folder, monkeypatch, capsys):
    with fake_hub_client(monkeypatch) as hub:
        publish.main([str(rte_folder), "--repo-id", "someone/tiny-rte", "--dry-run"])
    out = capsys.readouterr().out
    for name in ("README.md", "model.safetensors", "config.json", "modeling_litebert.py", "tokenizer.json",
                 "eval_results.json"):
        assert f"  {name} " in out
    assert DRY_RUN_DONE in out
    assert hub.created == [] and hub.commits == []


def test_the_approved_folder_loads_without_litebert_and_reproduces_the_outputs(rte_folder, monkeypatch):
    with fake_hub_client(monkeypatch):
        publish.main([str(rte_folder), "--repo-id", "someone/tiny-rte", "--dry-run"])
    theirs = classify_without_litebert(rte_folder, SENTENCES)
    assert theirs["class"].startswith("transformers_modules.") and theirs["class"].endswith(
        "modeling_litebert.LiteBertForSequenceClassification")
    tokenizer = AutoTokenizer.from_pretrained(rte_folder)
    model = LiteBertForSequenceClassification.from_pretrained(rte_folder).eval()
    with torch.no_grad():
        ours = model(**tokenizer(SENTENCES, padding=True, return_tensors="pt")).logits
    torch.testing.assert_close(torch.tensor(theirs["logits"]), ours, atol=1e-5, rtol=1e-5)
    assert theirs["labels"] == [model.config.id2label[i] for i in ours.argmax(-1).tolist()]


def damage_pickle(folder):
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")


def damage_training_args(folder):
    (folder / "training_args.bin").write_bytes(b"\x80\x04K\x01.")


def damage_auto_map(folder):
    config = read_json(folder / "config.json")
    del config["auto_map"]
    (folder / "config.json").write_text(json.dumps(config))


def damage_config_json(folder):
    (folder / "config.json").write_text('{"model_type": "litebert",\n oops}')


def damage_code(folder):
    (folder / "modeling_litebert.py").unlink()


def damage_code_needing_litebert(folder):
    path = folder / "configuration_litebert.py"
    path.write_text("from litebert.configuration_litebert import LiteBertConfig  # noqa\n" + path.read_text())


def damage_weights(folder):
    (folder / "model.safetensors").unlink()


def damage_tokenizer(folder):
    (folder / "tokenizer.json").unlink()
    (folder / "tokenizer_config.json").unlink()


def damage_pickle_with_upper_case_suffix(folder):
    torch.save({"weight": torch.ones(2)}, folder / "weights.PT")


def damage_renamed_torch_save(folder):
    torch.save({"weight": torch.ones(2)}, folder / "extra_state.data")


def damage_renamed_pickle(folder):
    (folder / "notes.txt").write_bytes(pickle.dumps({"steps": 3}, protocol=4))


def damage_empty_weights(folder):
    (folder / "model.safetensors").write_bytes(b"")


def damage_garbage_weights(folder):
    (folder / "model.safetensors").write_bytes(b"these bytes are no safetensors header" * 10)


def damage_truncated_weights(folder):
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])


NAN_TENSOR = "classifier.weight"


def damage_nan_weights(folder):
    path = folder / "model.safetensors"
    weights = load_file(path)
    weights[NAN_TENSOR] = torch.full_like(weights[NAN_TENSOR], float("nan"))
    save_file(weights, path, metadata={"format": "pt"})


def damage_symlink_to_a_file_outside(folder):
    (folder / "notes.md").symlink_to(folder.parent / "outside.txt")
    (folder.parent / "outside.txt").write_text("a private file next to the model folder")


def damage_symlink_to_a_folder_outside(folder):
    (folder.parent / "private").mkdir()
    (folder.parent / "private" / "secret.txt").write_text("not for the Hub")
    (folder / "extras").symlink_to(folder.parent / "private", target_is_directory=True)


def damage_card(folder):
    path = folder / "README.md"
    path.write_text(path.read_text().replace("pipeline_tag: text-classification", "pipeline_tag: spam"))


@pytest.mark.parametrize("damage,reason", [
    (damage_pickle, "pytorch_model.bin is a pickle file"),
    (damage_training_args, "training_args.bin is a pickle file"),
    (damage_auto_map, "auto_map has no AutoConfig entry"),
    (damage_config_json, "config.json, line 2: invalid JSON"),
    (damage_code, "modeling_litebert.py is missing"),
    (damage_code_needing_litebert, "does not load without litebert installed"),
    (damage_weights, "no weights: expected model.safetensors"),
    (damage_tokenizer, "no tokenizer"),
    (damage_card, "pipeline_tag 'spam'"),
    (damage_pickle_with_upper_case_suffix, "weights.PT is a pickle file"),
    (damage_renamed_torch_save, "extra_state.data holds pickled data"),
    (damage_renamed_pickle, "notes.txt holds pickled data"),
    (damage_empty_weights, "model.safetensors is not a valid safetensors file"),
    (damage_garbage_weights, "model.safetensors is not a valid safetensors file"),
    (damage_truncated_weights, "model.safetensors is not a valid safetensors file"),
    (damage_nan_weights, f"hold NaN or infinite values ({NAN_TENSOR})"),
    (damage_symlink_to_a_file_outside, "notes.md is a symlink to "),
    (damage_symlink_to_a_folder_outside, "extras is a symlink to "),
])
def test_a_folder_others_could_not_load_is_refused_with_the_reason(damage, reason, rte_copy, monkeypatch, capsys):
    damage(rte_copy)
    with fake_hub_client(monkeypatch) as hub, pytest.raises(SystemExit) as refused:
        publish.main([str(rte_copy), "--repo-id", "someone/tiny-rte"])
    message = capsys.readouterr().err
    assert refused.value.code == 2
    assert message.startswith(f"litebert-publish: error: {rte_copy} cannot be published:")
    assert reason in message
    assert hub.commits == []


def tree_state(folder):
    """Every entry under `folder` (hidden ones too) with its kind, modification time and content hash."""
    state = {}
    for path in sorted(folder.rglob("*")):
        content = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        state[str(path.relative_to(folder))] = (path.is_dir(), path.stat().st_mtime_ns, content)
    return state


@pytest.mark.parametrize("with_card", [True, False], ids=["card", "no-card"])
def test_dry_run_leaves_the_folder_exactly_as_it_was(rte_copy, monkeypatch, capsys, with_card):
    if not with_card:
        (rte_copy / "README.md").unlink()
    before = tree_state(rte_copy)
    with fake_hub_client(monkeypatch):
        publish.main([str(rte_copy), "--repo-id", "someone/tiny-rte", "--dry-run"])
    assert tree_state(rte_copy) == before
    out = capsys.readouterr().out
    assert "README.md" in out and f"{DRY_RUN_DONE} (the card listed above was not written)." in out


def test_a_missing_card_is_written_before_uploading(rte_copy, monkeypatch):
    (rte_copy / "README.md").unlink()
    with fake_hub_client(monkeypatch) as hub:
        publish.main([str(rte_copy), "--repo-id", "someone/tiny-rte"])
    card = check_model_card(rte_copy / "README.md")
    assert card.data.eval_results[0].metric_value == read_json(rte_copy / "eval_results.json")["eval_accuracy"]
    assert hub.commits[-1].files["README.md"] == (rte_copy / "README.md").read_bytes()


def uploaded_card(hub):
    return ModelCard(hub.commits[-1].files["README.md"].decode())


def test_the_uploaded_card_loads_the_repo_id_it_is_published_under(rte_copy, monkeypatch):
    assert "someone/tiny-rte" not in (rte_copy / "README.md").read_text()  # the run wrote it for the folder's name
    with fake_hub_client(monkeypatch) as hub:
        publish.main([str(rte_copy), "--repo-id", "someone/tiny-rte"])
    card = uploaded_card(hub)
    assert 'AutoModelForSequenceClassification.from_pretrained("someone/tiny-rte", trust_remote_code=True)' in card.text
    assert 'AutoTokenizer.from_pretrained("someone/tiny-rte")' in card.text
    assert "## Limitations" in card.text and card.data == check_model_card(rte_copy / "README.md").data


def test_card_options_rebuild_the_card(rte_copy, monkeypatch):
    with fake_hub_client(monkeypatch) as hub:
        publish.main([str(rte_copy), "--repo-id", "someone/tiny-rte", "--base-model",
                      "sentence-transformers/all-MiniLM-L6-v2", "--license", "mit", "--language", "en", "de"])
    card = uploaded_card(hub)
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert (card.data.license, card.data.language) == ("mit", ["en", "de"])
    assert 'from_pretrained("someone/tiny-rte", trust_remote_code=True)' in card.text
    assert card.data.eval_results[0].metric_value == read_json(rte_copy / "eval_results.json")["eval_accuracy"]


def test_the_folders_code_runs_only_in_a_separate_process_without_the_token(rte_copy, monkeypatch, capsys, tmp_path):
    marker = tmp_path / "runs.jsonl"  # one line per execution of the folder's configuration module
    path = rte_copy / "configuration_litebert.py"
    path.write_text(f"import json as _json, os as _os\nopen({str(marker)!r}, 'a').write(_json.dumps("
                    "[_os.getpid(), _os.environ.get('HF_TOKEN'), _os.getcwd()]) + '\\n')\n" + path.read_text())
    with fake_hub_client(monkeypatch):  # sets HF_TOKEN in this process
        publish.main([str(rte_copy), "--repo-id", "someone/tiny-rte", "--dry-run"])
    runs = [json.loads(line) for line in marker.read_text().splitlines()]
    assert runs and os.environ["HF_TOKEN"]
    for pid, token, cwd in runs:
        assert pid != os.getpid() and token is None
        assert not Path(cwd).exists()  # a temporary directory, removed since
    assert "modeling code ran only in a separate Python process" in capsys.readouterr().out


def test_upload_sends_the_folder_in_one_commit_with_our_card(rte_copy, monkeypatch, capsys):
    (rte_copy / "checkpoint-3").mkdir()
    (rte_copy / "checkpoint-3" / "optimizer.pt").write_bytes(b"not uploaded")
    (rte_copy / "runs").mkdir()
    (rte_copy / "runs" / "events.out").write_bytes(b"not uploaded")
    (rte_copy / "vocab-copy.json").symlink_to("tokenizer.json")  # inside the folder: uploaded as the file it names
    with fake_hub_client(monkeypatch) as hub:
        publish.main([str(rte_copy), "--repo-id", "someone/tiny-rte", "--private", "--commit-message", "First release"])
    [created] = hub.created
    assert (created["organization"], created["name"]) == ("someone", "tiny-rte")
    assert created.get("visibility") == "private" or created.get("private") is True
    [commit] = hub.commits
    assert f"Uploaded: https://huggingface.co/someone/tiny-rte/commit/{1:040x}" in capsys.readouterr().out
    assert (commit.repo_id, commit.revision, commit.message) == ("someone/tiny-rte", "main", "First release")
    on_disk = {str(path.relative_to(rte_copy)) for path in rte_copy.rglob("*") if path.is_file()}
    expected = {name for name in on_disk if not name.startswith(("checkpoint-3/", "runs/"))}
    assert set(commit.files) == expected
    for name in expected:
        assert commit.files[name] == (rte_copy / name).read_bytes()
    assert hub.validated_cards == [(rte_copy / "README.md").read_text()]
    assert hub.unexpected == []


def run_publish_cli(folder, *flags, env_changes=None):
    """The installed console script, whose exit status is sys.exit(main())."""
    script = Path(sys.executable).parent / "litebert-publish"
    return subprocess.run([str(script), str(folder), "--repo-id", "someone/x", *flags], capture_output=True,
                          text=True, env={**os.environ, **(env_changes or {})})


def test_console_script_dry_run_succeeds(rte_folder):
    dry_run = run_publish_cli(rte_folder, "--dry-run")
    assert dry_run.returncode == 0 and DRY_RUN_DONE in dry_run.stdout


def test_offline_or_logged_out_upload_fails_with_a_clear_message(rte_folder, tmp_path):
    offline = run_publish_cli(rte_folder, env_changes={"HF_HUB_OFFLINE": "1", "HF_TOKEN": "hf_placeholder"})
    assert offline.returncode == 2 and "Traceback" not in offline.stderr
    assert "cannot reach the Hugging Face Hub: offline mode is on (HF_HUB_OFFLINE=1)" in offline.stderr
    logged_out = run_publish_cli(rte_folder, env_changes={"HF_HUB_OFFLINE": "1", "HF_TOKEN": "",
                                                           "HF_HOME": str(tmp_path)})
    assert logged_out.returncode == 2 and "Traceback" not in logged_out.stderr
    assert "not logged in to the Hugging Face Hub" in logged_out.stderr


def test_trainer_push_to_hub_uploads_the_litebert_card_and_code(rte_folder, tmp_path, monkeypatch):
    tokenizer = AutoTokenizer.from_pretrained(rte_folder)
    encoded = tokenizer(SENTENCES * 4, padding="max_length", max_length=32)
    rows = [{"input_ids": ids, "attention_mask": mask, "labels": i % 2}
            for i, (ids, mask) in enumerate(zip(encoded["input_ids"], encoded["attention_mask"]))]
    output = tmp_path / "trainer"
    with fake_hub_client(monkeypatch) as hub:
        model = LiteBertForSequenceClassification.from_pretrained(rte_folder)
        args = TrainingArguments(output, push_to_hub=True, hub_model_id="someone/pushed", max_steps=2,
                                 per_device_train_batch_size=4, report_to="none", use_cpu=True,
                                 save_strategy="steps", save_steps=2, hub_strategy="every_save")

        def accuracy(prediction: EvalPrediction) -> dict:
            return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}

        trainer = Trainer(model=model, args=args, train_dataset=rows, eval_dataset=rows, processing_class=tokenizer,
                          compute_metrics=accuracy)
        add_litebert_callbacks(trainer)
        trainer.train()
        assert check_model_card(output / "README.md")  # refreshed at the end of training
        metrics = trainer.evaluate()
        trainer.push_to_hub(license="mit")
    checkpoint_push, commit = hub.commits  # the push of checkpoint-2 during training, then the final one
    assert checkpoint_push.message == "Training in progress, step 2"
    assert "litebert" in ModelCard(checkpoint_push.files["README.md"].decode()).data.tags
    assert commit.message == "End of training"
    assert {"README.md", "modeling_litebert.py", "configuration_litebert.py", "model.safetensors", "config.json",
            "tokenizer.json", "training_args.json"} <= set(commit.files)
    assert "training_args.bin" not in commit.files  # JSON replaces the pickle before the upload
    card = ModelCard(commit.files["README.md"].decode())
    assert card.data.license == "mit" and "litebert" in card.data.tags
    assert [(r.dataset_config, r.metric_value) for r in card.data.eval_results] == [("rte", metrics["eval_accuracy"])]
    assert f"| total (unique, as stored) | {parameter_counts(model)['total']:,} |" in card.text
    assert hub.unexpected == []


def test_model_push_to_hub_uploads_the_litebert_card_with_the_folders_results(rte_folder, monkeypatch):
    model = LiteBertForSequenceClassification.from_pretrained(rte_folder)
    with fake_hub_client(monkeypatch) as hub:
        model.push_to_hub("someone/direct")
    commit = hub.commits[-1]
    assert {"README.md", "modeling_litebert.py", "configuration_litebert.py", "model.safetensors",
            "config.json"} <= set(commit.files)
    card = ModelCard(commit.files["README.md"].decode())
    assert "litebert" in card.data.tags and card.data.pipeline_tag == "text-classification"
    expected = read_json(rte_folder / "eval_results.json")["eval_accuracy"]
    assert [r.metric_value for r in card.data.eval_results] == [expected]
    assert 'from_pretrained("someone/direct", trust_remote_code=True)' in card.text
    assert hub.unexpected == []
