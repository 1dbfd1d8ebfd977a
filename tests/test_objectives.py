"""ELECTRA's replaced-token detection and MC-BERT's multiple-choice cloze: corruption, labels, candidates, gradient
flow, shared embeddings, saving and loading, and `litebert-pretrain --objective` end to end."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file

from litebert import (
    LiteBertConfig,
    LiteBertForMaskedLM,
    LiteBertForMultipleChoiceCloze,
    LiteBertForReplacedTokenDetection,
)
from litebert.cli.pretrain import parse_arguments, run
from litebert.hub_cards import model_card_for_folder
from litebert.modeling_objectives import GENERATOR_FOLDER, generator_config
from litebert.remote_code import run_script_without_litebert

from conftest import tiny_config_kwargs, wikitext_prefix

SPECIAL_IDS = [0, 1, 2, 3, 4]  # pad, unk, [CLS], [SEP], [MASK] in these tests
MASK_ID = 4
MODEL_CLASSES = {"electra": LiteBertForReplacedTokenDetection, "mc": LiteBertForMultipleChoiceCloze}


def tiny_config(**overrides) -> LiteBertConfig:
    return LiteBertConfig(**tiny_config_kwargs(special_token_ids=SPECIAL_IDS, pad_token_id=0, bos_token_id=2,
                                               eos_token_id=3, **overrides))


def masked_batch(seed: int = 0) -> dict:
    """Three padded sequences [CLS] ... [SEP], about a third of their words masked: [MASK], a random token, or kept."""
    generator = torch.Generator().manual_seed(seed)
    original = torch.randint(5, 99, (3, 12), generator=generator)
    original[:, 0] = 2
    attention_mask = torch.ones_like(original)
    for row, length in enumerate((12, 9, 6)):
        original[row, length - 1] = 3
        original[row, length:] = 0
        attention_mask[row, length:] = 0
    maskable = (attention_mask == 1) & (original > 4)
    chosen = maskable & (torch.rand(original.shape, generator=generator) < 0.35)
    labels = torch.where(chosen, original, -100)
    input_ids = original.clone()
    input_ids[chosen] = MASK_ID
    input_ids[1, 2] = 2 if not chosen[1, 2] else input_ids[1, 2]  # a special token inside the text: never asked about
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
            "sentence_order_label": torch.tensor([0, 1, 0]), "original": torch.where(chosen, original, input_ids)}


def model_inputs(batch: dict) -> dict:
    return {name: value for name, value in batch.items() if name != "original"}


def captured_main_input(model: torch.nn.Module) -> tuple[list, torch.utils.hooks.RemovableHandle]:
    """The input_ids the main encoder reads (the corrupted text), recorded by a hook."""
    seen = []
    handle = model.litebert.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append((args[0] if args else kwargs["input_ids"]).clone()), with_kwargs=True)
    return seen, handle


def test_rtd_labels_are_1_exactly_where_the_sample_differs_from_the_original():
    torch.manual_seed(0)
    model = LiteBertForReplacedTokenDetection(tiny_config())
    batch = masked_batch()
    seen, handle = captured_main_input(model)
    for seed in range(5):  # several draws: some samples equal the original, most do not
        torch.manual_seed(seed)
        outputs = model(**model_inputs(batch))
        corrupted, original = seen[-1], batch["original"]
        unmasked = batch["labels"] == -100
        assert torch.equal(corrupted[unmasked], original[unmasked])  # only masked positions are replaced
        asked = (batch["attention_mask"] == 1) & ~torch.isin(original, torch.tensor(SPECIAL_IDS))
        expected = torch.where(asked, (corrupted != original).long(), -100)
        assert torch.equal(outputs.replaced_labels, expected)
        assert not torch.isin(corrupted[~unmasked], torch.tensor(SPECIAL_IDS)).any()  # never a special sample
        assert outputs.replaced_labels.eq(1).any()
    handle.remove()
    # the loss is the generator's MLM loss plus lambda times the detection loss (plus SOP), as written out here
    asked = outputs.replaced_labels != -100
    detection = torch.nn.functional.binary_cross_entropy_with_logits(
        outputs.logits[asked], outputs.replaced_labels[asked].float())
    sop = torch.nn.functional.cross_entropy(outputs.sop_logits, batch["sentence_order_label"])
    generator = torch.nn.functional.cross_entropy(outputs.generator_logits, batch["labels"][batch["labels"] != -100])
    assert outputs.loss.item() == pytest.approx((generator + 50.0 * detection + sop).item(), rel=1e-5)


def test_candidates_hold_the_original_once_and_never_padding_or_special_tokens():
    torch.manual_seed(0)
    model = LiteBertForMultipleChoiceCloze(tiny_config(mc_num_candidates=6))
    batch = masked_batch()
    with torch.no_grad():  # a controller that would propose the original and the special tokens most of the time
        model.generator.predictions.decoder.bias[SPECIAL_IDS] = 8.0
        model.generator.predictions.decoder.bias[batch["original"].unique()] += 6.0
    seen, handle = captured_main_input(model)
    outputs = model(**model_inputs(batch))
    handle.remove()
    original, corrupted = batch["original"], seen[-1]
    asked = outputs.cloze_labels != -100
    candidates = outputs.candidates[asked]
    assert candidates.shape[1] == 6
    assert torch.equal((candidates == original[asked][:, None]).sum(1), torch.ones(len(candidates), dtype=torch.long))
    assert not torch.isin(candidates, torch.tensor(SPECIAL_IDS)).any()
    # the right choice: the original (choice 1) where the input was replaced, reject (choice 0) where it was not
    assert torch.equal(outputs.cloze_labels[asked], (corrupted[asked] != original[asked]).long())
    assert asked.sum() == ((batch["attention_mask"] == 1) & ~torch.isin(original, torch.tensor(SPECIAL_IDS))).sum()
    assert outputs.logits.shape == (*original.shape, 7)


@pytest.mark.parametrize("objective", ["electra", "mc"])
def test_the_main_loss_sends_no_gradient_to_the_generator(objective):
    """The generator's own parameters get exactly the gradient of its MLM loss: nothing flows back through the
    samples. (The shared word embeddings get both, by design.)"""
    torch.manual_seed(0)
    model = MODEL_CLASSES[objective](tiny_config())
    batch = masked_batch()
    model(**model_inputs(batch)).loss.backward()
    full = {name: param.grad.clone() for name, param in model.generator.named_parameters()
            if param.grad is not None and "word_embeddings" not in name}
    model.zero_grad()
    labels = batch["labels"]
    logits = model.generator(batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels).logits
    torch.nn.functional.cross_entropy(logits, labels[labels != -100]).backward()
    alone = {name: param.grad for name, param in model.generator.named_parameters()
             if param.grad is not None and "word_embeddings" not in name}
    assert full.keys() == alone.keys() and len(full) > 10
    for name, gradient in full.items():
        torch.testing.assert_close(gradient, alone[name], rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.parametrize("objective", ["electra", "mc"])
def test_word_embeddings_are_shared_and_saved_once(objective, tmp_path):
    torch.manual_seed(0)
    model = MODEL_CLASSES[objective](tiny_config(generator_hidden_fraction=0.5, generator_layer_fraction=0.5))
    shared = model.litebert.embeddings.word_embeddings.weight
    assert model.generator.litebert.embeddings.word_embeddings.weight is shared
    assert model.generator.predictions.decoder.weight is shared
    assert model.generator.config.hidden_size == 16 and model.generator.config.num_hidden_layers == 2
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    model(**model_inputs(masked_batch())).loss.backward()
    optimizer.step()
    model.save_pretrained(tmp_path)
    saved = load_file(tmp_path / "model.safetensors")
    assert "litebert.embeddings.word_embeddings.weight" in saved
    assert not any(name.startswith("generator.") and "word_embeddings" in name for name in saved)
    reloaded = type(model).from_pretrained(tmp_path)
    reloaded_embeddings = reloaded.litebert.embeddings.word_embeddings.weight
    assert reloaded.generator.litebert.embeddings.word_embeddings.weight is reloaded_embeddings
    for name, tensor in model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[name], tensor), name
    generator = LiteBertForMaskedLM.from_pretrained(tmp_path / GENERATOR_FOLDER)
    assert torch.equal(generator.litebert.embeddings.word_embeddings.weight, shared.detach())
    for name, tensor in model.generator.state_dict().items():
        assert torch.equal(generator.state_dict()[name], tensor), name


@pytest.mark.parametrize("objective", ["electra", "mc"])
def test_padding_free_execution_gives_the_padded_results(objective):
    """Both models (generator and main) skip padding by default; with the same weights and random draws, the padded
    path asks the same questions and scores them the same."""
    torch.manual_seed(0)
    padding_free = MODEL_CLASSES[objective](tiny_config()).eval()
    padded = MODEL_CLASSES[objective](tiny_config(padding_free=False)).eval()
    padded.load_state_dict(padding_free.state_dict())
    batch = model_inputs(masked_batch())
    outputs = []
    for model in (padding_free, padded):
        torch.manual_seed(3)
        with torch.no_grad():
            outputs.append(model(**batch))
    labels = "replaced_labels" if objective == "electra" else "cloze_labels"
    assert torch.equal(outputs[0][labels], outputs[1][labels])
    asked = outputs[0][labels] != -100
    torch.testing.assert_close(outputs[0].logits[asked], outputs[1].logits[asked], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(outputs[0].loss, outputs[1].loss, rtol=1e-5, atol=1e-5)


def test_generator_shape_follows_the_fractions_and_bad_settings_are_refused():
    config = LiteBertConfig.from_preset("albert-base")
    generator = generator_config(config)
    assert (generator.hidden_size, generator.num_attention_heads, generator.intermediate_size) == (256, 4, 1024)
    assert generator.embedding_size == config.embedding_size and generator.num_hidden_layers == 12
    refused = (("pretraining_objective", "bert", "one of"), ("generator_hidden_fraction", 0.0, r"in \(0, 1\]"),
               ("generator_layer_fraction", 1.5, r"in \(0, 1\]"), ("mc_num_candidates", 1, "at least 2"),
               ("discriminator_loss_weight", -1.0, "positive"), ("special_token_ids", [99], "vocab_size=99"))
    for field, value, allowed in refused:
        with pytest.raises(ValueError, match=rf"{field}=.*{allowed}"):
            LiteBertConfig(**tiny_config_kwargs(**{field: value}))


# ---- litebert-pretrain --objective, end to end on real text ----

TINY = ("hidden_size=64,num_attention_heads=2,intermediate_size=128,num_hidden_layers=2,embedding_size=32,"
        "max_position_embeddings=64")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return wikitext_prefix(tmp_path_factory.mktemp("corpus") / "wiki.train.txt", 1500)


@pytest.fixture(scope="module")
def tokenizer_folder(corpus, tmp_path_factory) -> Path:
    from litebert.tokenization import train_tokenizer

    folder = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer([str(corpus)], vocab_size=600, show_progress=False).save_pretrained(folder)
    return folder


def pretrain_argv(output_dir, corpus, tokenizer_folder, objective, *extra) -> list[str]:
    return [
        "--objective", objective, "--output_dir", str(output_dir), "--train_file", str(corpus),
        "--tokenizer_name", str(tokenizer_folder), "--config_overrides", TINY, "--max_seq_length", "64",
        "--per_device_train_batch_size", "16", "--per_device_eval_batch_size", "64", "--learning_rate", "2e-3",
        "--warmup_steps", "10", "--report_to", "none", "--use_cpu", "true", "--seed", "0",
        "--max_eval_samples", "128", "--disable_tqdm", "true", *extra,
    ]


def pretrain(*argv) -> dict:
    return run(*parse_arguments(pretrain_argv(*argv)))


@pytest.fixture(scope="module")
def trained(corpus, tokenizer_folder, tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """A short run of each objective, evaluated before and after training."""
    runs = {}
    for objective in ("electra", "mc"):
        folder = tmp_path_factory.mktemp(objective)
        results = pretrain(folder, corpus, tokenizer_folder, objective, "--do_train", "--do_eval", "--max_steps",
                           "100", "--logging_steps", "50", "--save_steps", "1000", "--max_eval_samples", "64")
        runs[objective] = folder, results
    return runs


@pytest.mark.parametrize("objective,metric", [("electra", "rtd_loss"), ("mc", "mc_loss")])
def test_a_short_run_lowers_the_held_out_loss_of_its_objective(trained, objective, metric):
    folder, results = trained[objective]
    # measured (100 steps): electra loss 41.9 -> 25.7, generator MLM loss 6.43 -> 5.10, RTD loss 0.70 -> 0.40;
    # mc loss 122.5 -> 39.4, generator MLM loss 6.43 -> 5.19, cloze loss 2.31 -> 0.67
    assert results["eval_loss"] < 0.8 * results["initial_eval_loss"]
    assert results[f"eval_{metric}"] < results[f"initial_eval_{metric}"] - 0.1
    assert results["eval_generator_mlm_loss"] < results["initial_eval_generator_mlm_loss"] - 0.3
    assert results["eval_generator_mlm_accuracy"] > results["initial_eval_generator_mlm_accuracy"]
    saved = {path.name for path in folder.iterdir()}
    assert {"model.safetensors", "config.json", "modeling_litebert.py", "tokenizer.json", "loss_curves.png",
            GENERATOR_FOLDER, "pretraining_results.json"} <= saved
    assert json.loads((folder / "config.json").read_text())["pretraining_objective"] == objective
    card = model_card_for_folder(folder).text
    assert {"electra": "replaced-token detection", "mc": "multiple-choice cloze"}[objective] in card


FINE_TUNING_AUTO_CLASSES = ("AutoModel", "AutoModelForSequenceClassification", "AutoModelForTokenClassification",
                            "AutoModelForQuestionAnswering", "AutoModelForMultipleChoice")

# Loads the folder into every fine-tuning Auto class in a process that cannot import litebert, and reports whether
# each encoder holds the saved main-model weights.
_LOAD_EVERY_HEAD = """
import json, sys
sys.modules["litebert"] = None
import torch, transformers
from safetensors.torch import load_file
folder, names = sys.argv[1], json.loads(sys.argv[2])
saved = {k: v for k, v in load_file(folder + "/model.safetensors").items() if k.startswith("litebert.")}
report = {}
for name in names:
    model = getattr(transformers, name).from_pretrained(folder, trust_remote_code=True)
    state = model.base_model.state_dict()
    report[name] = all(torch.equal(state[k.removeprefix("litebert.")], v) for k, v in saved.items()
                       if k.removeprefix("litebert.") in state)
print(json.dumps(report))
"""


@pytest.mark.parametrize("objective", ["electra", "mc"])
def test_the_main_model_loads_into_every_fine_tuning_head_with_and_without_the_package(trained, objective):
    folder, _ = trained[objective]
    saved = {name: tensor for name, tensor in load_file(folder / "model.safetensors").items()
             if name.startswith("litebert.")}
    for name in FINE_TUNING_AUTO_CLASSES:
        model = getattr(transformers, name).from_pretrained(folder)
        state = model.base_model.state_dict()
        assert all(torch.equal(state[key.removeprefix("litebert.")], tensor) for key, tensor in saved.items()
                   if key.removeprefix("litebert.") in state), name
        assert type(model).__module__.startswith("litebert.")
    report = json.loads(run_script_without_litebert(_LOAD_EVERY_HEAD, "loading every head", folder,
                                                    json.dumps(FINE_TUNING_AUTO_CLASSES)))
    assert report == dict.fromkeys(FINE_TUNING_AUTO_CLASSES, True)


@pytest.mark.parametrize("objective,config", [
    ("electra", TINY + ",sharing=attention,position_embedding_type=tupe"),
    ("mc", TINY + ",sharing=none,position_embedding_type=tupe,relative_attention_num_buckets=8"),
])
def test_an_interrupted_run_resumes_bitwise_with_tupe_tnf_and_sharing(corpus, tokenizer_folder, tmp_path, objective,
                                                                    config):
    extra = ("--do_train", "--max_steps", "4", "--save_steps", "2", "--logging_steps", "1", "--tnf",
             "--tnf_min_count", "2", "--config_overrides", config, "--per_device_train_batch_size", "4")
    pretrain(tmp_path / "uninterrupted", corpus, tokenizer_folder, objective, *extra)
    pretrain(tmp_path / "interrupted", corpus, tokenizer_folder, objective, *extra)
    shutil.rmtree(tmp_path / "interrupted" / "checkpoint-4")  # as if killed after the checkpoint at step 2
    (tmp_path / "interrupted" / "model.safetensors").unlink()
    pretrain(tmp_path / "interrupted", corpus, tokenizer_folder, objective, *extra)
    resumed, uninterrupted = (load_file(tmp_path / name / "model.safetensors")
                              for name in ("interrupted", "uninterrupted"))
    assert resumed.keys() == uninterrupted.keys() and "notes.notes" in resumed
    assert any(name.startswith("generator.") for name in resumed)
    for name, tensor in uninterrupted.items():
        assert torch.equal(resumed[name], tensor), name
    losses = [[(entry["step"], entry["loss"]) for entry in json.loads(
        (tmp_path / name / "trainer_state.json").read_text())["log_history"] if "loss" in entry]
        for name in ("interrupted", "uninterrupted")]
    assert losses[0] == losses[1] and len(losses[0]) == 4


def test_data_parallel_mc_run_with_two_cpu_processes(corpus, tokenizer_folder, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [str(torchrun), "--nproc_per_node", "2", "--master_port", "29519", "-m", "litebert.cli.pretrain",
               *pretrain_argv(tmp_path, corpus, tokenizer_folder, "mc", "--do_train", "--max_steps", "3",
                              "--logging_steps", "1", "--ddp_backend", "gloo", "--save_steps", "100", "--tnf",
                              "--tnf_min_count", "2", "--sop", "false", "--per_device_train_batch_size", "4")]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert json.loads((tmp_path / "pretraining_results.json").read_text())["world_size"] == 2
    assert json.loads((tmp_path / "trainer_state.json").read_text())["global_step"] == 3
    assert (tmp_path / GENERATOR_FOLDER / "model.safetensors").is_file()


def test_an_unknown_objective_is_refused(corpus, tokenizer_folder, tmp_path):
    with pytest.raises(SystemExit, match="--objective 'bert' is unknown; allowed: mlm, electra, mc"):
        pretrain(tmp_path, corpus, tokenizer_folder, "bert", "--do_train", "--max_steps", "1")
