"""Small LiteBERT students distilled from a fine-tuned SST-2 teacher, against the same students fine-tuned without
the teacher (the distillation table of docs/results.md).

Teacher: all-MiniLM-L6-v2 fine-tuned by `litebert-glue` on the first --train_samples SST-2 training sentences
(bench_onnx.py's command; reused when it is already in --workdir). For each student shape in STUDENTS, one random
initialization (--seed) is saved, then trained on the same sentences in two ways:
- distilled: `litebert-distill`, TinyBERT's two task-specific stages (embedding, hidden-state and attention losses,
  then the soft-label loss), starting from that initialization;
- fine-tuned: `litebert-glue` on the labels alone, from the same initialization, for as many epochs as the two
  stages together, at the same learning rate.
Every model is then scored on the SST-2 dev set (all 872 sentences, one pass, dynamic padding) and timed on it at
batch 32: sentences/s as the median (min-max) of --repeats passes, the models interleaved so that the machine's drift
hits all alike. Finished trainings are kept in --workdir and reused, so an interrupted run continues where it stopped.

    python benchmarks/distill_sst2.py                       # about an hour on 2 CPU cores
    python benchmarks/distill_sst2.py --quick --workdir /tmp/distill-quick    # every step on a few sentences
"""

import argparse
import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench_onnx import fine_tuned_minilm
from bench_padding_free import SST2_DEV, spread, sst2_batches, timed_passes
from litebert import LiteBertForSequenceClassification
from litebert.cli import distill, glue
from litebert.cli.finetune import FinetuningModelArguments, load_tokenizer
from litebert.tasks.glue import read_glue_tsv

# student shapes over the albert-base preset (factorized embeddings E=128, no dropout)
STUDENTS = {
    "4 layers, H=256": "hidden_size=256,num_attention_heads=4,intermediate_size=1024,num_hidden_layers=4,sharing=none",
    "one block applied 6 times, H=384": "hidden_size=384,num_attention_heads=6,intermediate_size=1536,"
                                        "num_hidden_layers=6,sharing=all",
}


@dataclass(frozen=True)
class Schedule:
    train_samples: int = 20000  # the first SST-2 training sentences: the teacher's and the students'
    intermediate_epochs: float = 2.0
    prediction_epochs: float = 2.0
    learning_rate: float = 3e-4  # students start from random weights: a from-scratch rate
    dev_sentences: int | None = None  # None: the whole dev set
    repeats: int = 5


QUICK = Schedule(train_samples=64, intermediate_epochs=1.0, prediction_epochs=1.0, dev_sentences=64, repeats=1)


def folder_name(student: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in student.lower()).strip("-").replace("--", "-")


def training_flags(schedule: Schedule, epochs: float, seed: int, output: Path) -> list[str]:
    """litebert-glue's data and Trainer flags, shared by every student training; warm-up over a tenth of the steps."""
    steps = math.ceil(epochs * math.ceil(schedule.train_samples / 32))
    return [
        "--task_name", "sst2", "--data_dir", str(SST2_DEV.parent), "--do_train", "--max_train_samples",
        str(schedule.train_samples), "--max_seq_length", "64", "--per_device_train_batch_size", "32",
        "--learning_rate", str(schedule.learning_rate), "--num_train_epochs", str(epochs),
        "--warmup_steps", str(max(1, steps // 10)), "--logging_steps", "50", "--save_strategy", "no",
        "--report_to", "none", "--use_cpu", "true", "--disable_tqdm", "true", "--seed", str(seed),
        "--output_dir", str(output),
    ]


def initial_student(teacher: Path, overrides: str, seed: int, output: Path) -> Path:
    """A new student of the given shape over the teacher's vocabulary, saved untrained with the tokenizer."""
    if (output / "model.safetensors").is_file():
        return output
    tokenizer = load_tokenizer(FinetuningModelArguments(model_name_or_path=str(teacher)))
    torch.manual_seed(seed)
    student = distill.new_student(
        distill.DistillationArguments(teacher_name_or_path=str(teacher), student_config_overrides=overrides),
        tokenizer, LiteBertForSequenceClassification, glue.label_config(glue.load_task("sst2")))
    student.save_pretrained(output)
    tokenizer.save_pretrained(output)
    return output


def train_students(teacher: Path, schedule: Schedule, seed: int, workdir: Path) -> dict[str, dict[str, Path]]:
    """For each shape: {"distilled": folder, "fine-tuned": folder}, trained unless already there."""
    folders = {}
    for student, overrides in STUDENTS.items():
        root = workdir / folder_name(student)
        start = initial_student(teacher, overrides, seed, root / "initial")
        intermediate, distilled, finetuned = root / "intermediate", root / "distilled", root / "fine-tuned"
        stages = [(intermediate, start, "intermediate", schedule.intermediate_epochs),
                  (distilled, intermediate, "prediction", schedule.prediction_epochs)]
        for output, source, stage, epochs in stages:
            if not (output / "model.safetensors").is_file():
                print(f"{student}: distillation, stage {stage}")
                distill.main(["--teacher_name_or_path", str(teacher), "--student_name_or_path", str(source),
                              "--distill_stage", stage, *training_flags(schedule, epochs, seed, output)])
        if not (finetuned / "model.safetensors").is_file():
            print(f"{student}: fine-tuning without the teacher")
            epochs = schedule.intermediate_epochs + schedule.prediction_epochs
            glue.main(["--model_name_or_path", str(start), *training_flags(schedule, epochs, seed, finetuned)])
        folders[student] = {"distilled": distilled, "fine-tuned": finetuned, "intermediate": intermediate}
    return folders


def training_seconds(*folders: Path) -> float:
    return sum(json.loads((folder / "all_results.json").read_text())["train_runtime"] for folder in folders)


def classifier(folder: Path) -> LiteBertForSequenceClassification:
    return LiteBertForSequenceClassification.from_pretrained(folder, attn_implementation="sdpa").eval()


def dev_accuracy(model, batches: list[dict], gold: np.ndarray) -> float:
    with torch.inference_mode():
        predictions = torch.cat([model(**batch).logits.argmax(-1) for batch in batches]).numpy()
    return float((predictions == gold).mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("bench-distill"),
                        help="where the teacher and the students are trained (reused when there)")
    parser.add_argument("--seed", type=int, default=0, help="the students' initialization and data order")
    parser.add_argument("--quick", action="store_true", help="every step on 64 sentences, to check the pipeline")
    args = parser.parse_args()
    schedule = QUICK if args.quick else Schedule()
    teacher = fine_tuned_minilm(args.workdir, schedule.train_samples)
    students = train_students(teacher, schedule, args.seed, args.workdir)

    models = {"teacher (all-MiniLM-L6-v2)": classifier(teacher)}
    for student, folders in students.items():
        models[f"{student}, distilled"] = classifier(folders["distilled"])
        models[f"{student}, fine-tuned"] = classifier(folders["fine-tuned"])
    tokenizer = load_tokenizer(FinetuningModelArguments(model_name_or_path=str(teacher)))
    dev = read_glue_tsv(SST2_DEV, "sst2", labelled=True)[: schedule.dev_sentences]
    gold = np.array([row["label"] for row in dev])
    batches = sst2_batches(tokenizer, "dynamic", len(dev), len(tokenizer))
    accuracy = {name: dev_accuracy(model, batches, gold) for name, model in models.items()}
    # one model per shape is timed: the distilled and fine-tuned students of a shape run the same computation
    timed = {name: model for name, model in models.items() if not name.endswith("fine-tuned")}
    times = timed_passes(timed, batches, "cpu", schedule.repeats)
    teacher_times = times["teacher (all-MiniLM-L6-v2)"]

    results = {"schedule": dataclasses.asdict(schedule), "seed": args.seed, "torch_threads": torch.get_num_threads(),
               "models": {}}
    print(f"\nSST-2 dev, {len(dev)} sentences, batch 32, {torch.get_num_threads()} threads; "
          f"students trained on {schedule.train_samples} sentences")
    print("| model | parameters | training seconds | dev accuracy | sentences/s | speed-up vs teacher |")
    print("|---|---|---|---|---|---|")
    for name, model in models.items():
        shape = name.rsplit(", ", 1)[0]
        shape_times = times.get(name) or times[f"{shape}, distilled"]
        if name.startswith("teacher"):
            seconds = training_seconds(teacher)
        elif name.endswith("distilled"):
            seconds = training_seconds(students[shape]["intermediate"], students[shape]["distilled"])
        else:
            seconds = training_seconds(students[shape]["fine-tuned"])
        parameters = sum(parameter.numel() for parameter in model.parameters())
        rates = [len(dev) / t for t in shape_times]
        speedups = [own / reference for own, reference in zip(rates, (len(dev) / t for t in teacher_times))]
        results["models"][name] = {"parameters": parameters, "training_seconds": seconds, "accuracy": accuracy[name],
                                   "sentences_per_second": rates, "speedup_vs_teacher": speedups}
        print(f"| {name} | {parameters / 1e6:.2f} M | {seconds:.0f} | {accuracy[name]:.4f} | {spread(rates, 1)} | "
              f"{spread(speedups)} |")
    (args.workdir / "distill_results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
