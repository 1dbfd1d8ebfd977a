"""`litebert-pretrain` killed at any moment and started again with the same command ends exactly where an
uninterrupted run ends; damaged checkpoints are skipped with a warning naming the file."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import wikitext_prefix

TINY = ("hidden_size=32,num_attention_heads=2,intermediate_size=64,num_hidden_layers=2,embedding_size=16,"
        "max_position_embeddings=64,hidden_dropout_prob=0.1")
MAX_STEPS = 8
# one thread: the same arithmetic in every process, and less contention between the two runs going at once
ENVIRONMENT = {**os.environ, "OMP_NUM_THREADS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
               "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return wikitext_prefix(tmp_path_factory.mktemp("corpus") / "wiki.txt", 300)


@pytest.fixture(scope="module")
def tokenizer_folder(corpus, tmp_path_factory) -> Path:
    """One tokenizer for every run here: what is compared is the training, not tokenizer training."""
    from litebert.tokenization import train_tokenizer

    folder = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer([str(corpus)], vocab_size=400, show_progress=False).save_pretrained(folder)
    return folder


def pretrain_command(output_dir, corpus, tokenizer_folder, *extra) -> list[str]:
    return [
        sys.executable, "-m", "litebert.cli.pretrain", "--output_dir", str(output_dir), "--train_file", str(corpus),
        "--tokenizer_name", str(tokenizer_folder), "--config_overrides", TINY, "--max_seq_length", "64",
        "--per_device_train_batch_size", "4", "--learning_rate", "1e-3", "--do_train", "--max_steps", str(MAX_STEPS),
        "--save_steps", "1", "--logging_steps", "1", "--tnf", "--tnf_min_count", "2", "--seed", "7",
        "--report_to", "none", "--use_cpu", "true", "--disable_tqdm", "true", *extra,
    ]


def start(command, log: Path) -> subprocess.Popen:
    with open(log, "w") as output:  # a file, not a pipe: nothing blocks a process that is not read from
        return subprocess.Popen(command, env=ENVIRONMENT, stdout=output, stderr=subprocess.STDOUT)


def kill_when(process: subprocess.Popen, path: Path, delay: float) -> bool:
    """SIGKILL `process` `delay` seconds after `path` appears; False when the process ended first."""
    while not path.exists():
        if process.poll() is not None:
            return False
        time.sleep(0.002)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return True


def finish(process: subprocess.Popen, log: Path) -> None:
    assert process.wait(timeout=300) == 0, log.read_text()[-3000:]


def training_outcome(output_dir: Path) -> dict:
    """Final weights (TNF notes included), the optimizer state of the last checkpoint and the logged losses."""
    optimizer = torch.load(output_dir / f"checkpoint-{MAX_STEPS}" / "optimizer.pt", weights_only=True)
    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    return {
        "weights": load_file(output_dir / "model.safetensors"),
        "optimizer": {(index, name): value for index, state in optimizer["state"].items()
                      for name, value in state.items()},
        "losses": [(entry["step"], entry["loss"]) for entry in history if "loss" in entry],
        "rare_words": (output_dir / "rare_words.json").read_text(),
    }


def assert_same_outcome(resumed: dict, uninterrupted: dict) -> None:
    assert resumed["losses"] == uninterrupted["losses"] and len(resumed["losses"]) == MAX_STEPS
    assert resumed["rare_words"] == uninterrupted["rare_words"]
    assert resumed["weights"].keys() == uninterrupted["weights"].keys() and "notes.notes" in resumed["weights"]
    for name, tensor in uninterrupted["weights"].items():
        assert torch.equal(resumed["weights"][name], tensor), name
    assert resumed["optimizer"].keys() == uninterrupted["optimizer"].keys()
    for key, value in uninterrupted["optimizer"].items():
        assert torch.equal(resumed["optimizer"][key], value), key


def test_a_run_killed_at_any_moment_and_restarted_ends_like_an_uninterrupted_one(corpus, tokenizer_folder, tmp_path):
    reference_log = tmp_path / "reference.log"
    reference = start(pretrain_command(tmp_path / "uninterrupted", corpus, tokenizer_folder), reference_log)
    output_dir = tmp_path / "interrupted"
    command = pretrain_command(output_dir, corpus, tokenizer_folder)
    delays = random.Random(0)
    # kill points: as the rare-word vocabulary is written, as a checkpoint is being saved, at a random moment of the
    # next steps (about 50 ms each, saving included), while the final checkpoint and model are saved
    kill_points = [("rare_words.json", 0.0), ("checkpoint-2", 0.0), ("checkpoint-4", delays.uniform(0.0, 0.1)),
                   (f"checkpoint-{MAX_STEPS}", delays.uniform(0.0, 0.05))]
    killed = [kill_when(start(command, tmp_path / f"killed-{n}.log"), output_dir / name, delay)
              for n, (name, delay) in enumerate(kill_points)]
    finish(start(command, tmp_path / "restarted.log"), tmp_path / "restarted.log")
    finish(reference, reference_log)
    assert all(killed)
    assert_same_outcome(training_outcome(output_dir), training_outcome(tmp_path / "uninterrupted"))


def pretrain_here(output_dir, corpus, tokenizer_folder, *extra) -> dict:
    """The same command run in this process (no start-up cost)."""
    from litebert.cli.pretrain import parse_arguments, run

    return run(*parse_arguments(pretrain_command(output_dir, corpus, tokenizer_folder, *extra)[3:]))


@pytest.fixture(scope="module")
def finished_run(corpus, tokenizer_folder, tmp_path_factory) -> Path:
    output_dir = tmp_path_factory.mktemp("finished")
    pretrain_here(output_dir, corpus, tokenizer_folder)
    return output_dir


def copy_of(run_folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run_folder, tmp_path / "run"))


def truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


@pytest.mark.parametrize("damage,file_name,problem", [
    (truncate, "model.safetensors", "is truncated or damaged"),
    (truncate, "trainer_state.json", "is not valid JSON"),
    (Path.unlink, "trainer_state.json", "is missing"),
    (truncate, "optimizer.pt", "is truncated or damaged"),
])
def test_a_damaged_last_checkpoint_is_skipped_naming_the_file(damage, file_name, problem, finished_run, corpus,
                                                             tokenizer_folder, tmp_path, caplog):
    output_dir = copy_of(finished_run, tmp_path)
    damaged = output_dir / f"checkpoint-{MAX_STEPS}" / file_name
    damage(damaged)
    (output_dir / "model.safetensors").unlink()
    pretrain_here(output_dir, corpus, tokenizer_folder)
    assert f"Skipping {damaged.parent}: {damaged} {problem}" in caplog.text
    assert f"Resuming from {output_dir / f'checkpoint-{MAX_STEPS - 1}'}" in caplog.text
    assert_same_outcome(training_outcome(output_dir), training_outcome(finished_run))


def test_a_finished_run_started_again_trains_no_further(finished_run, corpus, tokenizer_folder, tmp_path, caplog):
    output_dir = copy_of(finished_run, tmp_path)
    pretrain_here(output_dir, corpus, tokenizer_folder)
    assert f"checkpoint-{MAX_STEPS} already took the --max_steps {MAX_STEPS} steps" in caplog.text
    assert not (output_dir / f"checkpoint-{MAX_STEPS + 1}").exists()
    assert json.loads((output_dir / "trainer_state.json").read_text())["global_step"] == MAX_STEPS
    assert_same_outcome(training_outcome(output_dir), training_outcome(finished_run))


def test_resuming_with_another_model_shape_is_refused(finished_run, corpus, tokenizer_folder, tmp_path):
    """All layers share one block, so a 4-layer model would load the 2-layer checkpoint's weights without complaint."""
    output_dir = copy_of(finished_run, tmp_path)
    shutil.rmtree(output_dir / f"checkpoint-{MAX_STEPS}")  # as if killed before the end
    with pytest.raises(SystemExit, match=f"checkpoint-{MAX_STEPS - 1} was saved by a different run: "
                                         "num_hidden_layers is 2 in the checkpoint but 4 in this command"):
        pretrain_here(output_dir, corpus, tokenizer_folder, "--config_overrides", TINY.replace("layers=2", "layers=4"))


def test_resuming_with_another_tokenizer_is_refused(corpus, tokenizer_folder, tmp_path):
    from litebert.tokenization import train_tokenizer

    without_notes = ("--tnf", "false", "--max_steps", "2")  # with TNF, its rare words would be refused first
    pretrain_here(tmp_path / "run", corpus, tokenizer_folder, *without_notes)
    other_tokenizer = tmp_path / "other-tokenizer"  # same size, other pieces: the config alone would not tell
    other = train_tokenizer([str(corpus)], vocab_size=400, lowercase=False, show_progress=False)
    other.save_pretrained(other_tokenizer)
    with pytest.raises(SystemExit, match="checkpoint-2 was saved by a different run: its tokenizer.json differs from "
                                         "this command's tokenizer"):
        pretrain_here(tmp_path / "run", corpus, other_tokenizer, *without_notes)
