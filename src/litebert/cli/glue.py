"""Fine-tune and evaluate a LiteBERT on a GLUE task (all nine; STS-B as regression).

    python -m litebert.cli.glue --model_name_or_path runs/albert-base --task_name rte \\
        --data_dir glue_data/RTE --output_dir runs/rte --do_train --do_eval --do_predict \\
        --max_seq_length 128 --per_device_train_batch_size 32 --learning_rate 3e-5 --num_train_epochs 3

Data come from --train_file/--validation_file/--test_file (.tsv in the original GLUE layout, .csv, .json),
else from --data_dir (an original GLUE task folder), else from the Hub (--dataset_name, default nyu-mll/glue).
--model_name_or_path may also be a local transformers BERT/ALBERT folder: it is converted on loading.
MNLI is evaluated on validation_matched (eval_*) and validation_mismatched (eval_mismatched_*).
--do_predict writes the GLUE server's submission files (RTE.tsv, MNLI-m.tsv, ...) into --output_dir.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from transformers import BatchEncoding, PreTrainedTokenizerBase, Trainer, TrainingArguments

from .. import LiteBertForSequenceClassification
from ..tasks.glue import GLUE_TASKS, GlueTask, get_glue_task, glue_metrics, load_glue_split, write_glue_predictions
from .common import build_trainer, command, command_line, save_metrics, seed_everything, setup_logging, train
from .finetune import (
    FinetuningDataArguments,
    FinetuningModelArguments,
    describe_run,
    first_samples,
    load_model,
    load_tokenizer,
    parse_arguments,
    resolve_max_seq_length,
)

DEFAULT_MAX_SEQ_LENGTH = 128
SPLITS_HINT = "pass --train_file/--validation_file/--test_file or a --data_dir holding the task's TSV files"


@dataclass
class GlueArguments:
    task_name: str = field(metadata={"help": f"one of {', '.join(GLUE_TASKS)}"})


def load_task(task_name: str) -> GlueTask:
    try:
        return get_glue_task(task_name)
    except ValueError as err:
        raise SystemExit(f"--task_name: {err}") from None


def load_raw_splits(task: GlueTask, data_args: FinetuningDataArguments) -> datasets.DatasetDict:
    try:
        return load_glue_split(
            task,
            data_dir=data_args.data_dir,
            train_file=data_args.train_file,
            validation_file=data_args.validation_file,
            test_file=data_args.test_file,
            dataset_name=data_args.dataset_name or "nyu-mll/glue",
        )
    except (FileNotFoundError, RuntimeError) as err:
        raise SystemExit(str(err)) from None


def check_requested_splits(splits: datasets.DatasetDict, training_args: TrainingArguments) -> None:
    """Before any model is loaded: the splits --do_train, --do_eval and --do_predict need are there (MNLI's count as
    validation and test)."""
    for requested, flag, split in ((training_args.do_train, "--do_train", "train"),
                                   (training_args.do_eval, "--do_eval", "validation"),
                                   (training_args.do_predict, "--do_predict", "test")):
        if requested and not any(name.startswith(split) for name in splits):
            raise SystemExit(f"{flag} needs a {split} split: {SPLITS_HINT}")


def label_config(task: GlueTask) -> dict:
    if task.is_regression:
        return {"num_labels": 1, "problem_type": "regression"}
    return {
        "id2label": dict(enumerate(task.label_names)),
        "label2id": {name: i for i, name in enumerate(task.label_names)},
        "problem_type": "single_label_classification",
    }


def tokenize(
    splits: Mapping[str, datasets.Dataset],
    task: GlueTask,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int,
    num_proc: int | None,
) -> datasets.DatasetDict:
    """Token ids per row; padding is left to the collator, batch by batch."""
    pair = len(task.text_columns) == 2

    def encode(batch: Mapping[str, list]) -> BatchEncoding:
        texts = (batch["sentence1"], batch["sentence2"]) if pair else (batch["sentence1"],)
        return tokenizer(*texts, truncation=True, max_length=max_seq_length)

    return datasets.DatasetDict(splits).map(
        encode, batched=True, num_proc=num_proc, remove_columns=["sentence1", "sentence2"], desc="tokenizing"
    )


def limit_for_split(name: str, data_args: FinetuningDataArguments) -> int | None:
    if name == "train":
        return data_args.max_train_samples
    return data_args.max_eval_samples if name.startswith("validation") else data_args.max_predict_samples


def metrics_prefix(split: str) -> str:
    # "validation" and MNLI's "validation_matched" -> eval_*, "validation_mismatched" -> eval_mismatched_*
    return "eval_mismatched" if split.endswith("mismatched") else "eval"


def submission_file(task: GlueTask, split: str) -> str:
    # a --test_file is loaded as "test"; for MNLI that means the matched test set
    return task.submission_files.get(split, next(iter(task.submission_files.values())))


def run(
    model_args: FinetuningModelArguments,
    data_args: FinetuningDataArguments,
    glue_args: GlueArguments,
    training_args: TrainingArguments,
    command: str | None = None,
) -> dict:
    setup_logging(training_args)
    task = load_task(glue_args.task_name)
    raw_splits = load_raw_splits(task, data_args)
    check_requested_splits(raw_splits, training_args)
    tokenizer = load_tokenizer(model_args)
    seed_everything(training_args)  # the new head's initial weights follow --seed
    model = load_model(LiteBertForSequenceClassification, model_args, **label_config(task))
    describe_run(model, task.name, command or command_line("litebert-glue", None), model_args, data_args,
                 training_args)
    max_seq_length = resolve_max_seq_length(data_args, DEFAULT_MAX_SEQ_LENGTH, model.config)
    limited = {name: first_samples(dataset, limit_for_split(name, data_args)) for name, dataset in raw_splits.items()}
    with training_args.main_process_first(desc="tokenizing"):
        splits = tokenize(limited, task, tokenizer, max_seq_length, data_args.preprocessing_num_workers)

    train_dataset = splits["train"] if training_args.do_train else None
    eval_splits = {name: dataset for name, dataset in splits.items() if name.startswith("validation")}

    trainer = build_trainer(
        model, training_args, tokenizer, train_dataset, next(iter(eval_splits.values()), None),
        compute_metrics=lambda prediction: glue_metrics(task, prediction.predictions, prediction.label_ids),
    )
    results = {}
    if training_args.do_train:
        results.update(train(trainer, data_args.auto_resume, train_samples=len(train_dataset)))
    if training_args.do_eval:
        eval_metrics = {}
        for name, dataset in eval_splits.items():
            prefix = metrics_prefix(name)
            eval_metrics.update(trainer.evaluate(eval_dataset=dataset, metric_key_prefix=prefix))
            eval_metrics[f"{prefix}_samples"] = len(dataset)
        save_metrics(trainer, "eval", eval_metrics)
        results.update(eval_metrics)
    if training_args.do_predict:
        results.update(predict(trainer, task, splits))
    return results


def predict(trainer: Trainer, task: GlueTask, splits: datasets.DatasetDict) -> dict:
    """Predict every test split and write its submission file; test rows have no labels to score."""
    test_splits = {name: dataset for name, dataset in splits.items() if name.startswith("test")}
    written = {}
    for name, dataset in test_splits.items():
        predictions = trainer.predict(dataset.remove_columns("label"), metric_key_prefix="predict").predictions
        if trainer.is_world_process_zero():
            path = Path(trainer.args.output_dir) / submission_file(task, name)
            write_glue_predictions(task, predictions, path, indices=dataset["idx"])
            written[f"predict_{name}_file"] = str(path)
    return written


@command("litebert-glue")
def main(argv: list[str] | None = None) -> None:
    # returns nothing: the console script passes main's result to sys.exit, where anything else is a failure
    run(*parse_arguments(GlueArguments, argv), command=command_line("litebert-glue", argv))


if __name__ == "__main__":
    main()
