"""The pretraining-efficiency study: do sharing, TUPE, TNF, ELECTRA and MC-BERT reach the baseline sooner?

Every variant pretrains with `litebert-pretrain` on the same data, tokenizer, batch, sequence length, schedule and
step budget, for each seed; then each final checkpoint is
- probed: a logistic regression on its frozen mean-pooled features (SST-2 train subset -> SST-2 dev accuracy), which
  compares every objective alike, and
- fine-tuned with `litebert-glue` on each task with the same hyperparameters (seed = the pretraining seed).
The study writes, in --output_dir: `study_results.json` (every number), `study_tables.md` (its tables),
`curves_steps.png` and `curves_seconds.png` (held-out MLM loss against steps and against training
seconds: mean over seeds, shaded min-max). Runs are resumable: finished runs are kept, and a run cut short resumes
from its last checkpoint when the study is started again with the same command.

Variants (`VARIANTS`): all at one shape (`Budget.shape`, factorized embeddings E=128 everywhere, so that only the
named technique differs from the baseline); ELECTRA and MC-BERT have no main-model MLM loss to compare, so they
enter the curves and the steps-to-baseline table only through the probe and the downstream scores.

    python benchmarks/pretraining_study.py --output_dir runs/study            # the full grid
    python benchmarks/pretraining_study.py --quick --output_dir /tmp/study    # every variant, tiny, a few minutes
    python benchmarks/pretraining_study.py --variants bert tupe-a --seeds 0 1 2 --output_dir runs/study
"""

import argparse
import dataclasses
import json
import logging
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from litebert.cli import glue as glue_cli
from litebert.cli import pretrain as pretrain_cli
from litebert.cli.common import command_line
from litebert.tokenization import train_tokenizer

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
GLUE_FOLDERS = {"sst2": "SST-2", "mrpc": "MRPC", "rte": "RTE", "stsb": "STS-B", "cola": "CoLA"}
TASK_METRICS = {"sst2": "eval_accuracy", "mrpc": "eval_f1", "rte": "eval_accuracy", "stsb": "eval_spearmanr",
                "cola": "eval_matthews_correlation"}


@dataclass(frozen=True)
class Variant:
    overrides: str = ""  # config fields over the study shape
    objective: str = "mlm"
    tnf: bool = False


BASELINE = "bert"
VARIANTS = {
    "bert": Variant("sharing=none"),
    "albert": Variant("sharing=all"),
    "albert-attention": Variant("sharing=attention"),
    "tupe-a": Variant("sharing=none,position_embedding_type=tupe"),
    "tupe-r": Variant("sharing=none,position_embedding_type=tupe,relative_attention_num_buckets=32"),
    "tnf": Variant("sharing=none", tnf=True),
    "tupe-a+tnf": Variant("sharing=none,position_embedding_type=tupe", tnf=True),
    "electra": Variant("sharing=none", objective="electra"),
    "mc": Variant("sharing=none", objective="mc"),
    # TUPE-A and TNF with ELECTRA's objective: the combination the papers' claims point to, fixed before any grid ran
    "tupe-a+tnf+electra": Variant("sharing=none,position_embedding_type=tupe", objective="electra", tnf=True),
}


@dataclass(frozen=True)
class Budget:
    shape: str
    vocab_size: int
    max_seq_length: int
    batch_size: int
    max_steps: int
    eval_steps: int
    learning_rate: float
    max_eval_samples: int
    seeds: tuple[int, ...]
    tasks: dict[str, int]  # GLUE task -> training examples (its first ones)
    finetune_epochs: float
    finetune_learning_rate: float
    probe_examples: int
    dev_examples: int | None = None  # None: the whole dev set
    corpus_lines: tuple[int, int] | None = None  # (train, valid) first lines of WikiText-2; None: all
    extra_pretrain_flags: tuple[str, ...] = field(default=())


BUDGETS = {
    # about 2.5 hours on 2 CPU cores for the whole grid: a bert pretraining run (400 steps at 0.35-0.45 s, with its
    # evaluations) takes about 3 min, ELECTRA's 4 and MC's 8 (its steps cost 2.9x, benchmarks/bench_objectives.py);
    # each checkpoint's two fine-tunings and probe about 1 min
    "full": Budget(
        shape="hidden_size=256,num_attention_heads=4,intermediate_size=1024,num_hidden_layers=4,embedding_size=128,"
              "max_position_embeddings=64",
        vocab_size=8000, max_seq_length=64, batch_size=32, max_steps=400, eval_steps=40, learning_rate=1e-3,
        max_eval_samples=256, seeds=(0, 1, 2), tasks={"sst2": 2000, "stsb": 2000}, finetune_epochs=2,
        finetune_learning_rate=2e-4, probe_examples=2000,
    ),
    "quick": Budget(
        shape="hidden_size=32,num_attention_heads=2,intermediate_size=64,num_hidden_layers=2,embedding_size=16,"
              "max_position_embeddings=64",
        vocab_size=500, max_seq_length=64, batch_size=8, max_steps=6, eval_steps=3, learning_rate=1e-3,
        max_eval_samples=32, seeds=(0,), tasks={"sst2": 48}, finetune_epochs=1, finetune_learning_rate=1e-4,
        probe_examples=48, dev_examples=48, corpus_lines=(300, 100), extra_pretrain_flags=("--tnf_min_count", "2"),
    ),
}

logger = logging.getLogger("litebert.study")


# ---- running the grid ----


def corpus_files(args: argparse.Namespace, budget: Budget, output_dir: Path) -> tuple[Path, Path]:
    """(train, held-out) text files: the user's, or WikiText-2's train and valid splits (their first lines in quick
    mode)."""
    if args.train_file:
        return Path(args.train_file), Path(args.validation_file)
    source = SHARED_DATA / "wikitext-2"
    if budget.corpus_lines is None:
        return source / "train.txt", source / "valid.txt"
    files = []
    for split, lines in zip(("train", "valid"), budget.corpus_lines):
        path = output_dir / f"{split}.txt"
        with open(source / f"{split}.txt", encoding="utf-8") as text:
            path.write_text("".join(line for _, line in zip(range(lines), text)), encoding="utf-8")
        files.append(path)
    return files[0], files[1]


def study_tokenizer(train_file: Path, budget: Budget, output_dir: Path) -> Path:
    """One Unigram tokenizer for every variant, trained once on the training text."""
    folder = output_dir / "tokenizer"
    if not (folder / "tokenizer.json").is_file():
        train_tokenizer([str(train_file)], vocab_size=budget.vocab_size, show_progress=False).save_pretrained(folder)
    return folder


def pretrain(variant: str, seed: int, budget: Budget, corpus: tuple[Path, Path], tokenizer: Path,
             output_dir: Path) -> Path:
    folder = output_dir / "pretrain" / variant / f"seed{seed}"
    if (folder / "pretraining_results.json").is_file():
        return folder
    spec = VARIANTS[variant]
    overrides = ",".join(filter(None, (budget.shape, spec.overrides)))
    argv = [
        "--objective", spec.objective, "--config_overrides", overrides, "--output_dir", str(folder),
        "--train_file", str(corpus[0]), "--validation_file", str(corpus[1]), "--tokenizer_name", str(tokenizer),
        "--max_seq_length", str(budget.max_seq_length), "--per_device_train_batch_size", str(budget.batch_size),
        "--per_device_eval_batch_size", "64", "--max_steps", str(budget.max_steps),
        "--learning_rate", str(budget.learning_rate), "--warmup_steps", str(max(1, budget.max_steps // 10)),
        "--weight_decay", "0.01", "--do_train", "--do_eval", "--eval_strategy", "steps",
        "--eval_steps", str(budget.eval_steps), "--logging_steps", str(budget.eval_steps),
        "--save_steps", str(budget.eval_steps * 5), "--save_total_limit", "1",
        "--max_eval_samples", str(budget.max_eval_samples), "--seed", str(seed), "--report_to", "none",
        "--use_cpu", "true", "--disable_tqdm", "true", *budget.extra_pretrain_flags,
    ]
    if spec.tnf:
        argv.append("--tnf")
    logger.info(f"pretraining {variant}, seed {seed}")
    pretrain_cli.run(*pretrain_cli.parse_arguments(argv), command=command_line("litebert-pretrain", argv))
    return folder


def finetune(task: str, variant: str, seed: int, budget: Budget, checkpoint: Path, output_dir: Path) -> dict:
    folder = output_dir / "finetune" / task / variant / f"seed{seed}"
    results_file = folder / "all_results.json"
    if results_file.is_file():
        return json.loads(results_file.read_text())
    argv = [
        "--model_name_or_path", str(checkpoint), "--task_name", task, "--data_dir",
        str(SHARED_DATA / "glue" / GLUE_FOLDERS[task]), "--output_dir", str(folder), "--do_train", "--do_eval",
        "--max_seq_length", str(budget.max_seq_length), "--max_train_samples", str(budget.tasks[task]),
        "--per_device_train_batch_size", "32", "--per_device_eval_batch_size", "64",
        "--learning_rate", str(budget.finetune_learning_rate), "--num_train_epochs", str(budget.finetune_epochs),
        "--warmup_steps", str(max(1, int(0.1 * budget.finetune_epochs * math.ceil(budget.tasks[task] / 32)))),
        "--weight_decay", "0.01", "--save_strategy", "no", "--seed", str(seed),
        "--report_to", "none", "--use_cpu", "true", "--disable_tqdm", "true",
    ]
    if budget.dev_examples is not None:
        argv += ["--max_eval_samples", str(budget.dev_examples)]
    logger.info(f"fine-tuning {variant} seed {seed} on {task}")
    glue_cli.run(*glue_cli.parse_arguments(glue_cli.GlueArguments, argv), command=command_line("litebert-glue", argv))
    return json.loads(results_file.read_text())


def mean_pooled_features(model: torch.nn.Module, tokenizer, sentences: list[str], max_length: int) -> np.ndarray:
    features = []
    with torch.no_grad():
        for start in range(0, len(sentences), 64):
            batch = tokenizer(sentences[start:start + 64], padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            features.append(((hidden * mask).sum(1) / mask.sum(1)).numpy())
    return np.concatenate(features)


def linear_probe(checkpoint: Path, budget: Budget) -> dict:
    """SST-2 dev accuracy of a logistic regression on the frozen encoder's mean-pooled features."""
    cached = checkpoint / "probe.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from transformers import AutoModel, AutoTokenizer

    from litebert.tasks.glue import read_glue_tsv

    train = read_glue_tsv(SHARED_DATA / "glue" / "SST-2" / "train.tsv", "sst2", labelled=True)[: budget.probe_examples]
    dev = read_glue_tsv(SHARED_DATA / "glue" / "SST-2" / "dev.tsv", "sst2", labelled=True)[: budget.dev_examples]
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModel.from_pretrained(checkpoint).eval()
    start = time.perf_counter()
    train_x = mean_pooled_features(model, tokenizer, [row["sentence1"] for row in train], budget.max_seq_length)
    dev_x = mean_pooled_features(model, tokenizer, [row["sentence1"] for row in dev], budget.max_seq_length)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    probe.fit(train_x, [row["label"] for row in train])
    accuracy = float(probe.score(dev_x, [row["label"] for row in dev]))
    result = {"probe_accuracy": accuracy, "probe_seconds": time.perf_counter() - start}
    cached.write_text(json.dumps(result))
    return result


# ---- reading the runs ----


def pretraining_curve(folder: Path) -> dict:
    """Held-out metrics against step and training seconds: the evaluation before training (step 0), then every
    evaluation of the run, each paired with the `train_seconds` logged at its step."""
    results = json.loads((folder / "pretraining_results.json").read_text())
    history = json.loads((folder / "trainer_state.json").read_text())["log_history"]
    seconds_at = {entry["step"]: entry["train_seconds"] for entry in history if "train_seconds" in entry}
    evaluations = [entry for entry in history if "eval_loss" in entry and entry["step"] in seconds_at]
    curve = {"step": [0], "seconds": [0.0], "loss": [results["initial_eval_loss"]],
             "mlm_loss": [results.get("initial_eval_mlm_loss")]}
    for entry in evaluations:
        curve["step"].append(entry["step"])
        curve["seconds"].append(seconds_at[entry["step"]])
        curve["loss"].append(entry["eval_loss"])
        curve["mlm_loss"].append(entry.get("eval_mlm_loss"))
    curve["train_seconds"] = max(seconds_at.values())
    curve["parameters"] = parameter_count(folder)
    return curve


def parameter_count(folder: Path) -> int:
    """Unique parameters of the main encoder (what fine-tuning starts from; generators excluded)."""
    from transformers import AutoModel

    return sum(parameter.numel() for parameter in AutoModel.from_pretrained(folder).parameters())


def first_crossing(curve: dict, target: float, axis: str) -> float | None:
    """Where the held-out MLM loss first reaches `target`, linearly interpolated between evaluations; None if never."""
    points = list(zip(curve[axis], curve["mlm_loss"]))
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if y1 <= target:
            return x1 if y0 == y1 else x0 + (x1 - x0) * (y0 - target) / (y0 - y1)
    return None


def to_baseline(curves: dict[str, dict[int, dict]]) -> dict:
    """For each MLM variant and seed: the steps and seconds it takes to reach the baseline's final held-out MLM loss
    (of the baseline run with the same seed), as a ratio to what the baseline itself takes."""
    table = {}
    for variant, runs in curves.items():
        if VARIANTS[variant].objective != "mlm":
            continue
        ratios = {"steps": [], "seconds": [], "not_reached": 0}
        for seed, curve in runs.items():
            baseline = curves[BASELINE][seed]
            target = baseline["mlm_loss"][-1]
            for axis in ("steps", "seconds"):
                key = "step" if axis == "steps" else "seconds"
                reached, own = first_crossing(curve, target, key), first_crossing(baseline, target, key)
                if reached is None:
                    ratios["not_reached"] += axis == "steps"
                else:
                    ratios[axis].append(reached / own)
        table[variant] = ratios
    return table


def compute_seconds(checkpoints: dict[str, dict[int, Path]], finetuned: dict[str, dict[str, list[dict]]]) -> dict:
    """Wall-clock seconds the grid's runs took, from their own records (so a study resumed over several sessions
    still counts every run once): pretraining (with its evaluations), fine-tuning (training and dev evaluation) and
    the probes."""
    pretraining = sum(json.loads((folder / "pretraining_results.json").read_text())["train_runtime"]
                      for runs in checkpoints.values() for folder in runs.values())
    finetuning = sum(result["train_runtime"] + result["eval_runtime"] for tasks in finetuned.values()
                     for results in tasks.values() for result in results)
    probes = sum(json.loads((folder / "probe.json").read_text())["probe_seconds"]
                 for runs in checkpoints.values() for folder in runs.values())
    return {"pretraining": pretraining, "finetuning": finetuning, "probes": probes}


def summary(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


# ---- tables and plots ----


def plot_curves(curves: dict[str, dict[int, dict]], axis: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, plot = plt.subplots(figsize=(7, 4.5))
    for variant, runs in curves.items():
        if VARIANTS[variant].objective != "mlm":
            continue
        length = min(len(curve["mlm_loss"]) for curve in runs.values())
        x = np.mean([curve[axis][:length] for curve in runs.values()], axis=0)
        y = np.array([curve["mlm_loss"][:length] for curve in runs.values()])
        plot.plot(x[1:], y.mean(0)[1:], label=variant)
        plot.fill_between(x[1:], y.min(0)[1:], y.max(0)[1:], alpha=0.15)
    plot.set_xlabel("optimizer steps" if axis == "step" else "training seconds (2 CPU cores)")
    plot.set_ylabel("held-out MLM loss")
    plot.set_title("mean over seeds, shaded: min-max")
    plot.grid(alpha=0.3)
    plot.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def mean_std(values: list[float], scale: float = 1.0, digits: int = 3) -> str:
    if not values:
        return "-"
    stats = summary([value * scale for value in values])
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"


def spread_of(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.fmean(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def markdown_tables(results: dict) -> str:
    variants, tasks = results["variants"], list(results["budget"]["tasks"])
    lines = ["### Pretraining", "",
             "| variant | parameters | s/step | final held-out MLM loss | final MLM accuracy | steps to the baseline's "
             "final MLM loss (ratio) | seconds to it (ratio) |", "|---|---|---|---|---|---|---|"]
    for name in variants:
        run = results["runs"][name]
        ratio = results["to_baseline"].get(name)
        steps = seconds = "n/a (no MLM loss)"
        if ratio is not None:
            missing = f", {ratio['not_reached']} of {len(run['seeds'])} not reached" if ratio["not_reached"] else ""
            steps, seconds = spread_of(ratio["steps"]) + missing, spread_of(ratio["seconds"]) + missing
        lines.append(f"| {name} | {run['parameters']:,} | {mean_std(run['seconds_per_step'])} | "
                     f"{mean_std(run['final_mlm_loss'])} | {mean_std(run['final_mlm_accuracy'])} | {steps} | "
                     f"{seconds} |")
    header = " | ".join(["variant", "SST-2 probe accuracy", *(f"{task} ({TASK_METRICS[task]})" for task in tasks),
                         "fine-tuning s/step"])
    lines += ["", "### Downstream (dev, mean ± std over seeds, x100)", "", f"| {header} |",
              "|" + "---|" * (len(tasks) + 3)]
    for name in variants:
        run = results["runs"][name]
        scores = [mean_std(run["tasks"][task], 100, 1) for task in tasks]
        step_seconds = [value for task in tasks for value in run["finetune_seconds_per_step"][task]]
        lines.append(f"| {name} | {mean_std(run['probe_accuracy'], 100, 1)} | {' | '.join(scores)} | "
                     f"{mean_std(step_seconds)} |")
    compute = results["compute_seconds"]
    lines += ["", f"Compute, wall-clock from each run's own record ({results['torch_threads']} threads): pretraining "
                  f"{compute['pretraining'] / 3600:.2f} h, fine-tuning {compute['finetuning'] / 3600:.2f} h, probes "
                  f"{compute['probes'] / 60:.1f} min."]
    return "\n".join(lines) + "\n"


# ---- the study ----


def run_study(args: argparse.Namespace) -> dict:
    budget = BUDGETS["quick" if args.quick else "full"]
    if args.seeds:
        budget = dataclasses.replace(budget, seeds=tuple(args.seeds))
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    variants = args.variants or list(VARIANTS)
    if BASELINE not in variants:
        variants = [BASELINE, *variants]  # every ratio is to the baseline
    started = time.perf_counter()
    corpus = corpus_files(args, budget, output_dir)
    tokenizer = study_tokenizer(corpus[0], budget, output_dir)
    # seed by seed, the variants in turn, so that the machine's drift over the hours spreads over every variant alike
    checkpoints = {name: {} for name in variants}
    for seed in budget.seeds:
        for name in variants:
            checkpoints[name][seed] = pretrain(name, seed, budget, corpus, tokenizer, output_dir)
    curves = {name: {seed: pretraining_curve(folder) for seed, folder in runs.items()}
              for name, runs in checkpoints.items()}
    runs, finetuned_runs = {}, {}
    for name, folders in checkpoints.items():
        finetuned = {task: [finetune(task, name, seed, budget, folder, output_dir) for seed, folder in folders.items()]
                     for task in budget.tasks}
        finetuned_runs[name] = finetuned
        probes = [linear_probe(folder, budget) for folder in folders.values()]
        runs[name] = {
            "seeds": list(folders),
            "parameters": curves[name][budget.seeds[0]]["parameters"],
            "seconds_per_step": [curve["train_seconds"] / budget.max_steps for curve in curves[name].values()],
            "final_mlm_loss": [curve["mlm_loss"][-1] for curve in curves[name].values() if curve["mlm_loss"][-1]],
            "final_mlm_accuracy": [json.loads((folder / "pretraining_results.json").read_text()).get(
                "eval_mlm_accuracy") for folder in folders.values() if VARIANTS[name].objective == "mlm"],
            "probe_accuracy": [probe["probe_accuracy"] for probe in probes],
            "tasks": {task: [result[TASK_METRICS[task]] for result in results] for task, results in finetuned.items()},
            "finetune_seconds_per_step": {task: [1 / result["train_steps_per_second"] for result in results]
                                          for task, results in finetuned.items()},
            "curves": curves[name],
        }
    results = {
        "budget": {**budget.__dict__, "mode": "quick" if args.quick else "full"},
        "variants": variants,
        "runs": runs,
        "to_baseline": to_baseline(curves),
        "compute_seconds": compute_seconds(checkpoints, finetuned_runs),
        "total_seconds": time.perf_counter() - started,
        "torch_threads": torch.get_num_threads(),
    }
    (output_dir / "study_results.json").write_text(json.dumps(results, indent=1))
    (output_dir / "study_tables.md").write_text(markdown_tables(results))
    plot_curves(curves, "step", output_dir / "curves_steps.png")
    plot_curves(curves, "seconds", output_dir / "curves_seconds.png")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--quick", action="store_true", help="every variant at a tiny shape, for a test (minutes)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="default: all")
    parser.add_argument("--seeds", nargs="+", type=int, help="default: 0 1 2 (quick: 0)")
    parser.add_argument("--train_file", help="a corpus of your own (default: WikiText-2 train)")
    parser.add_argument("--validation_file", help="its held-out text (needed with --train_file)")
    args = parser.parse_args()
    if bool(args.train_file) != bool(args.validation_file):
        parser.error("--train_file and --validation_file go together")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    results = run_study(args)
    print((Path(args.output_dir) / "study_tables.md").read_text())
    compute = results["compute_seconds"]
    print(f"this invocation: {results['total_seconds'] / 60:.1f} min; the grid's runs in all: "
          + ", ".join(f"{part} {seconds / 3600:.2f} h" for part, seconds in compute.items()))


if __name__ == "__main__":
    main()
