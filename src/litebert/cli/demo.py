"""`litebert-demo` (`make demo`): pretrain a small LiteBERT from raw text on the CPU, offline, in a few minutes.

1. Gathers the built-in English corpus (docstrings of the Python installation) and trains a Unigram tokenizer on it.
2. Pretrains a small ALBERT-shaped LiteBERT with MLM + sentence-order prediction on the stock Trainer.
3. Reports held-out MLM accuracy, perplexity and SOP accuracy before and after training.
4. Saves a Hub-ready folder, reloads it in a fresh process where `litebert` cannot be imported (stock transformers,
   `trust_remote_code=True`), checks it reproduces the hidden states, and shows `pipeline("fill-mask")` predictions.
"""

import argparse
import json
import shutil
from pathlib import Path

import torch
from transformers import AutoTokenizer, TrainingArguments

from .. import PRESETS, LiteBertConfig, LiteBertForPreTraining, LiteBertModel
from ..parameters import format_parameter_table, parameter_counts
from ..remote_code import fill_mask_without_litebert, run_without_litebert
from .common import ArgumentParser, command
from .pretrain import PretrainingDataArguments, PretrainingModelArguments, run

# ALBERT-style (E=128, all layers shared) but narrow and short, so a few minutes of two CPU cores make visible progress.
DEMO_SHAPE = ("hidden_size=128,num_attention_heads=2,intermediate_size=512,num_hidden_layers=4,"
              "max_position_embeddings=64")
PROBES = [
    "Return the [MASK] of the list.",
    "This function is deprecated and will be [MASK] in a future version.",
    "Raise an [MASK] if the file does not exist.",
]


def preset_parameter_rows() -> dict[str, dict[str, int]]:
    """Parameter counts of every preset, built on the meta device so nothing is allocated."""
    rows = {}
    for name in PRESETS:
        with torch.device("meta"):
            rows[name] = parameter_counts(LiteBertModel(LiteBertConfig.from_preset(name)))
    return rows


def pretraining_arguments(
    output_dir: str, max_steps: int, seed: int
) -> tuple[PretrainingModelArguments, PretrainingDataArguments, TrainingArguments]:
    model_args = PretrainingModelArguments(preset="albert-base", config_overrides=DEMO_SHAPE, tokenizer_vocab_size=8000)
    data_args = PretrainingDataArguments(max_seq_length=64, default_corpus_megabytes=4.0, max_eval_samples=1024)
    training_args = TrainingArguments(
        output_dir=output_dir,
        do_train=True,
        do_eval=True,
        max_steps=max_steps,
        per_device_train_batch_size=32,
        per_device_eval_batch_size=128,
        learning_rate=2e-3,
        warmup_steps=max(1, max_steps // 10),
        weight_decay=0.01,
        logging_steps=max(1, max_steps // 10),
        eval_strategy="steps",
        eval_steps=max(1, max_steps // 4),
        save_steps=max(1, max_steps // 3),
        save_total_limit=1,
        report_to=[],
        use_cpu=True,
        seed=seed,
    )
    return model_args, data_args, training_args


def print_before_after(results: dict) -> None:
    print(f"\n{'held-out metric':<18}{'before':>10}{'after':>10}")
    for name in ("mlm_accuracy", "perplexity", "sop_accuracy"):
        before, after = results[f"initial_eval_{name}"], results[f"eval_{name}"]
        print(f"{name:<18}{before:>10.3f}{after:>10.3f}")


def check_fresh_process_reload(folder: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(folder)
    inputs = dict(tokenizer(["Parameter sharing keeps the model small.", "Return the index."], padding=True,
                            return_tensors="pt"))
    model = LiteBertForPreTraining.from_pretrained(folder).eval()
    with torch.no_grad():
        expected = model.litebert(**inputs).last_hidden_state
    loaded_class, reloaded = run_without_litebert(folder, "AutoModel", inputs)
    difference = (expected - reloaded).abs().max().item()
    print(f"\nFresh process without litebert: AutoModel -> {loaded_class.rsplit('.', 1)[-1]} "
          f"(remote code), max |difference| of hidden states = {difference:.2g}")
    if difference > 1e-5:
        raise SystemExit("The reloaded model does not reproduce the saved one.")
    print('pipeline("fill-mask") in that process, top 3:')
    for sentence, predictions in zip(PROBES, fill_mask_without_litebert(folder, PROBES)):
        print(f"  {sentence}\n    " + ", ".join(f"{token!r} {score:.2f}" for token, score in predictions))


@command("litebert-demo")
def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="litebert-demo", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="demo-output", help="where the run and Hub-ready model are written")
    parser.add_argument("--max_steps", type=int, default=800)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    folder = Path(args.output_dir)
    if (folder / "demo_summary.json").is_file():  # a finished earlier demo: start over (an interrupted one resumes)
        shutil.rmtree(folder)

    print("Parameters of the published shapes (V = 30000):")
    print(format_parameter_table(preset_parameter_rows()))

    results = run(*pretraining_arguments(args.output_dir, args.max_steps, args.seed))
    model = LiteBertForPreTraining.from_pretrained(folder)
    print("\nDemo model (sharing='all'):")
    print(format_parameter_table({"demo": parameter_counts(model)}))
    print_before_after(results)
    print(f"\nHub-ready folder {folder}/: " + ", ".join(
        sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.endswith(".txt") and p.name[0] != ".")))
    check_fresh_process_reload(folder)
    summary = {name: results[name] for name in results if name.startswith(("initial_eval_", "eval_"))}
    (folder / "demo_summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
