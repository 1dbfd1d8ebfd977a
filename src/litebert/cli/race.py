"""Fine-tune and evaluate a LiteBERT on RACE reading comprehension (four-way multiple choice).

    python -m litebert.cli.race --model_name_or_path runs/albert-base --data_dir RACE \\
        --output_dir runs/race --do_train --do_eval --do_predict --max_seq_length 512 \\
        --per_device_train_batch_size 8 --gradient_accumulation_steps 4 --learning_rate 1e-5 --num_train_epochs 2

--data_dir is the original distribution: {train,dev,test}/{middle,high}/*.txt; --dataset_name a Hub copy laid out as
ehovy/race (dev is its validation split). Training reads --train_split (default train), evaluation --eval_split
(dev), --do_predict --predict_split (test, scored too: RACE's test answers are public)
and writes {predict_split}_predictions.json (question id -> answer letter). Metrics: accuracy overall and
accuracy_middle / accuracy_high. --model_name_or_path may be a local BERT/ALBERT folder (converted on loading).
"""

from dataclasses import dataclass, field

import datasets
import numpy as np
from transformers import DataCollatorForMultipleChoice, PreTrainedTokenizerBase, Trainer, TrainingArguments

from .. import LiteBertForMultipleChoice
from ..tasks.race import (
    ANSWER_LETTERS,
    LEVELS,
    load_race_from_hub,
    prepare_multiple_choice_features,
    race_accuracy,
    read_race,
)
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
    with_prefix,
    write_json,
)

DEFAULT_MAX_SEQ_LENGTH = 512


@dataclass
class RaceArguments:
    train_split: str = field(default="train", metadata={"help": "folder under --data_dir to train on"})
    eval_split: str = field(default="dev", metadata={"help": "folder under --data_dir to evaluate on"})
    predict_split: str = field(default="test", metadata={"help": "folder under --data_dir to predict"})
    levels: list[str] = field(default_factory=lambda: list(LEVELS), metadata={"help": "middle and/or high"})


def load_split(
    data_args: FinetuningDataArguments, race_args: RaceArguments, split: str, limit: int | None, seed: int
) -> datasets.Dataset:
    if not data_args.data_dir and not data_args.dataset_name:
        raise SystemExit("RACE needs --data_dir (the folder holding {train,dev,test}/{middle,high}/*.txt) or "
                         "--dataset_name (a Hub copy laid out as ehovy/race).")
    try:
        if data_args.data_dir:
            examples = read_race(data_args.data_dir, split, race_args.levels)
        else:
            examples = load_race_from_hub(data_args.dataset_name, split, race_args.levels)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        raise SystemExit(str(err)) from None
    dataset = datasets.Dataset.from_list(examples)
    # the files come level by level, so a sample cut from the top would hold middle-school questions only
    if limit is not None:
        dataset = first_samples(dataset.shuffle(seed=seed), limit)
    return dataset


def featurize(
    examples: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int,
    data_args: FinetuningDataArguments,
) -> datasets.Dataset:
    return examples.map(
        prepare_multiple_choice_features,
        batched=True,
        remove_columns=examples.column_names,
        num_proc=data_args.preprocessing_num_workers,
        fn_kwargs={"tokenizer": tokenizer, "max_seq_length": max_seq_length},
        desc="choices",
    )


def score(
    trainer: Trainer,
    examples: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int,
    data_args: FinetuningDataArguments,
    prefix: str,
) -> tuple[dict[str, float], np.ndarray]:
    """(metrics with the loss and race_accuracy under `prefix`, predicted choice per question)."""
    output = trainer.predict(featurize(examples, tokenizer, max_seq_length, data_args), metric_key_prefix=prefix)
    accuracy = race_accuracy(output.predictions, output.label_ids, examples["level"])
    metrics = {**output.metrics, **with_prefix(prefix, accuracy)}
    return metrics, output.predictions.argmax(axis=1)


def run(
    model_args: FinetuningModelArguments,
    data_args: FinetuningDataArguments,
    race_args: RaceArguments,
    training_args: TrainingArguments,
    command: str | None = None,
) -> dict:
    setup_logging(training_args)
    seed = training_args.seed
    train_examples = eval_examples = predict_examples = None
    if training_args.do_train:
        train_examples = load_split(data_args, race_args, race_args.train_split, data_args.max_train_samples, seed)
    if training_args.do_eval:
        eval_examples = load_split(data_args, race_args, race_args.eval_split, data_args.max_eval_samples, seed)
    if training_args.do_predict:
        predict_examples = load_split(data_args, race_args, race_args.predict_split, data_args.max_predict_samples,
                                      seed)

    tokenizer = load_tokenizer(model_args)
    seed_everything(training_args)  # the new head's initial weights follow --seed
    model = load_model(LiteBertForMultipleChoice, model_args)
    describe_run(model, "race", command or command_line("litebert-race", None), model_args, data_args, training_args)
    max_seq_length = resolve_max_seq_length(data_args, DEFAULT_MAX_SEQ_LENGTH, model.config)
    train_features = None
    if train_examples is not None:
        with training_args.main_process_first(desc="training choices"):
            train_features = featurize(train_examples, tokenizer, max_seq_length, data_args)
    # each batch is padded to its longest (article, choice) pair, not to max_seq_length
    collator = DataCollatorForMultipleChoice(tokenizer)
    trainer = build_trainer(model, training_args, tokenizer, train_features, data_collator=collator)

    results = {}
    if training_args.do_train:
        results.update(train(trainer, data_args.auto_resume, train_samples=len(train_examples)))
    if training_args.do_eval:
        metrics = score(trainer, eval_examples, tokenizer, max_seq_length, data_args, "eval")[0]
        save_metrics(trainer, "eval", metrics)
        results.update(metrics)
    if training_args.do_predict:
        metrics, choices = score(trainer, predict_examples, tokenizer, max_seq_length, data_args, "predict")
        save_metrics(trainer, "predict", metrics)
        answers = {qid: ANSWER_LETTERS[choice] for qid, choice in zip(predict_examples["example_id"], choices)}
        write_json(trainer, f"{race_args.predict_split}_predictions.json", answers)
        results.update(metrics)
    return results


@command("litebert-race")
def main(argv: list[str] | None = None) -> None:
    # returns nothing: the console script passes main's result to sys.exit, where anything else is a failure
    run(*parse_arguments(RaceArguments, argv), command=command_line("litebert-race", argv))


if __name__ == "__main__":
    main()
