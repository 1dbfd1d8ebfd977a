"""Fine-tune and evaluate a LiteBERT for extractive question answering on SQuAD v1.1 or v2.0.

    python -m litebert.cli.squad --model_name_or_path runs/albert-base \\
        --train_file squad/train-v2.0.json --validation_file squad/dev-v2.0.json --version_2_with_negative \\
        --output_dir runs/squad2 --do_train --do_eval --max_seq_length 384 --doc_stride 128 \\
        --per_device_train_batch_size 32 --learning_rate 3e-5 --num_train_epochs 2

Files are the official SQuAD JSON (or pass --dataset_name for a Hub copy with train/validation splits).
Without --version_2_with_negative, unanswerable questions are dropped from every file, so SQuAD v1.1 can be trained
on a v2.0 file. Evaluation writes predictions.json, nbest_predictions.json (and null_odds.json for v2.0) and
eval_exact/eval_f1 (plus HasAns_*/NoAns_*/best_* for v2.0) to eval_results.json. --do_predict answers the questions
of --test_file into predict_predictions.json. --model_name_or_path may be a local BERT/ALBERT folder (converted).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import datasets
from transformers import PreTrainedTokenizerBase, Trainer, TrainingArguments

from .. import LiteBertForQuestionAnswering
from ..tasks.squad import (
    postprocess_predictions,
    prepare_train_features,
    prepare_validation_features,
    read_squad,
    squad_evaluate,
)
from .common import build_trainer, command, command_line, logger, save_metrics, seed_everything, setup_logging, train
from .finetune import (
    FinetuningDataArguments,
    FinetuningModelArguments,
    describe_run,
    first_samples,
    load_config,
    load_model,
    load_tokenizer,
    parse_arguments,
    require_split,
    resolve_max_seq_length,
    with_prefix,
    write_json,
)

DEFAULT_MAX_SEQ_LENGTH = 384
FILES_HINT = "pass --train_file/--validation_file/--test_file (official SQuAD JSON) or a --dataset_name with it"
# the Hub squad/squad_v2 layout, also given by read_squad; explicit so that empty answer lists keep their types
EXAMPLE_FEATURES = datasets.Features({
    "id": datasets.Value("string"),
    "title": datasets.Value("string"),
    "context": datasets.Value("string"),
    "question": datasets.Value("string"),
    "answers": {"text": datasets.Sequence(datasets.Value("string")),
                "answer_start": datasets.Sequence(datasets.Value("int32"))},
    "is_impossible": datasets.Value("bool"),
})


@dataclass
class SquadArguments:
    version_2_with_negative: bool = field(
        default=False, metadata={"help": "SQuAD 2.0: some questions have no answer (otherwise they are dropped)"}
    )
    doc_stride: int = field(default=128, metadata={"help": "context tokens shared by consecutive windows"})
    max_query_length: int = field(default=64, metadata={"help": "questions are cut after this many tokens"})
    n_best_size: int = field(default=20, metadata={"help": "candidate starts and ends per window"})
    max_answer_length: int = field(default=30, metadata={"help": "longest answer, in tokens"})
    null_score_diff_threshold: float = field(
        default=0.0, metadata={"help": "v2.0: answer 'no answer' when null score - best span score exceeds this"}
    )


def load_examples(data_args: FinetuningDataArguments, squad_args: SquadArguments) -> dict[str, datasets.Dataset]:
    """Question examples per split ("train", "validation", "test") from the JSON files or the Hub."""
    if data_args.dataset_name:
        hub = datasets.load_dataset(data_args.dataset_name)
        splits = {name: hub[name] for name in ("train", "validation") if name in hub}
    else:
        files = {"train": data_args.train_file, "validation": data_args.validation_file, "test": data_args.test_file}
        splits = {name: read_file(path) for name, path in files.items() if path}
    if not squad_args.version_2_with_negative:
        splits = {name: examples.filter(is_answerable) for name, examples in splits.items()}
    return splits


def read_file(path: str) -> datasets.Dataset:
    try:
        squad = read_squad(path)
    except FileNotFoundError as err:
        raise SystemExit(f"SQuAD file not found: {err.filename or path}") from None
    return datasets.Dataset.from_list(squad.examples, features=EXAMPLE_FEATURES)


def check_doc_stride(squad_args: SquadArguments, max_seq_length: int, tokenizer: PreTrainedTokenizerBase) -> None:
    """Each window holds the question (up to --max_query_length tokens), the special tokens and the rest of
    max_seq_length for context; consecutive windows share doc_stride context tokens, which must be fewer than that."""
    special_tokens = tokenizer.num_special_tokens_to_add(pair=True)
    context_tokens = max_seq_length - squad_args.max_query_length - special_tokens
    if not 0 <= squad_args.doc_stride < context_tokens:
        raise SystemExit(
            f"--doc_stride {squad_args.doc_stride} must be at least 0 and below the context tokens of a window: "
            f"--max_seq_length {max_seq_length} - --max_query_length {squad_args.max_query_length} - {special_tokens} "
            f"special tokens = {context_tokens}. Lower --doc_stride or --max_query_length."
        )


def is_answerable(example: Mapping) -> bool:
    return not example.get("is_impossible", False) and len(example["answers"]["text"]) > 0


def featurize(
    examples: datasets.Dataset,
    prepare: Callable[..., dict],
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int,
    squad_args: SquadArguments,
    data_args: FinetuningDataArguments,
) -> datasets.Dataset:
    return examples.map(
        prepare,
        batched=True,
        remove_columns=examples.column_names,
        num_proc=data_args.preprocessing_num_workers,
        fn_kwargs={"tokenizer": tokenizer, "max_seq_length": max_seq_length, "doc_stride": squad_args.doc_stride,
                   "max_query_length": squad_args.max_query_length},
        desc="windows",
    )


def answer_questions(
    trainer: Trainer,
    examples: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int,
    squad_args: SquadArguments,
    data_args: FinetuningDataArguments,
) -> tuple[dict[str, str], dict[str, float], dict[str, list[dict]]]:
    """Answer texts per question id from the model's start/end logits over every window of the context."""
    features = featurize(examples, prepare_validation_features, tokenizer, max_seq_length, squad_args, data_args)
    model_inputs = features.remove_columns(["example_id", "offset_mapping"])
    start_logits, end_logits = trainer.predict(model_inputs).predictions[:2]
    return postprocess_predictions(
        examples, features, start_logits, end_logits,
        n_best_size=squad_args.n_best_size,
        max_answer_length=squad_args.max_answer_length,
        version_2_with_negative=squad_args.version_2_with_negative,
        null_score_diff_threshold=squad_args.null_score_diff_threshold,
    )


def evaluate(
    trainer: Trainer,
    examples: datasets.Dataset,
    answers: tuple[dict[str, str], dict[str, float], dict[str, list[dict]]],
    squad_args: SquadArguments,
) -> dict:
    """Write the answers (what `answer_questions` returns) to the output folder and score them against examples."""
    predictions, null_odds, nbest = answers
    write_json(trainer, "predictions.json", predictions)
    write_json(trainer, "nbest_predictions.json", nbest)
    if squad_args.version_2_with_negative:
        write_json(trainer, "null_odds.json", null_odds)
    scores = squad_evaluate(
        examples, predictions,
        na_probs=null_odds if squad_args.version_2_with_negative else None,
        na_prob_thresh=squad_args.null_score_diff_threshold,  # the same cut that made a prediction ""
        version_2_with_negative=squad_args.version_2_with_negative,
    )
    metrics = with_prefix("eval", scores)
    metrics["eval_samples"] = len(examples)
    return metrics


def requested_examples(
    data_args: FinetuningDataArguments, squad_args: SquadArguments, training_args: TrainingArguments
) -> dict[str, datasets.Dataset]:
    """The questions that --do_train, --do_eval and --do_predict ask for ("train", "validation", "test"), each cut to
    its --max_*_samples."""
    splits = load_examples(data_args, squad_args)
    requests = (("train", training_args.do_train, "--do_train", data_args.max_train_samples),
                ("validation", training_args.do_eval, "--do_eval", data_args.max_eval_samples),
                ("test", training_args.do_predict, "--do_predict", data_args.max_predict_samples))
    return {name: first_samples(require_split(splits, name, flag, FILES_HINT), limit)
            for name, requested, flag, limit in requests if requested}


def training_windows(
    examples: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int,
    squad_args: SquadArguments,
    data_args: FinetuningDataArguments,
    training_args: TrainingArguments,
) -> datasets.Dataset:
    with training_args.main_process_first(desc="training windows"):
        windows = featurize(examples, prepare_train_features, tokenizer, max_seq_length, squad_args, data_args)
    logger.info(f"{len(examples)} training questions -> {len(windows)} windows")
    return windows


def answer_requested(
    trainer: Trainer,
    examples: dict[str, datasets.Dataset],
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int,
    squad_args: SquadArguments,
    data_args: FinetuningDataArguments,
) -> dict:
    """After training: answer and score the validation questions (--do_eval, metrics saved), answer the test
    questions into predict_predictions.json (--do_predict); returns the metrics."""
    metrics = {}
    if "validation" in examples:
        answers = answer_questions(trainer, examples["validation"], tokenizer, max_seq_length, squad_args, data_args)
        metrics = evaluate(trainer, examples["validation"], answers, squad_args)
        save_metrics(trainer, "eval", metrics)
    if "test" in examples:
        predictions = answer_questions(trainer, examples["test"], tokenizer, max_seq_length, squad_args, data_args)[0]
        write_json(trainer, "predict_predictions.json", predictions)
    return metrics


def task_name(squad_args: SquadArguments) -> str:
    return "squad_v2" if squad_args.version_2_with_negative else "squad"


def run(
    model_args: FinetuningModelArguments,
    data_args: FinetuningDataArguments,
    squad_args: SquadArguments,
    training_args: TrainingArguments,
    command: str | None = None,
) -> dict:
    setup_logging(training_args)
    examples = requested_examples(data_args, squad_args, training_args)
    tokenizer = load_tokenizer(model_args)
    max_seq_length = resolve_max_seq_length(data_args, DEFAULT_MAX_SEQ_LENGTH, load_config(model_args))
    check_doc_stride(squad_args, max_seq_length, tokenizer)
    seed_everything(training_args)  # the new head's initial weights follow --seed
    model = load_model(LiteBertForQuestionAnswering, model_args)
    describe_run(model, task_name(squad_args), command or command_line("litebert-squad", None), model_args, data_args,
                 training_args)
    train_windows = None
    if "train" in examples:
        train_windows = training_windows(examples["train"], tokenizer, max_seq_length, squad_args, data_args,
                                         training_args)
    # the Trainer's default collator for a tokenizer pads each batch to its longest window
    trainer = build_trainer(model, training_args, tokenizer, train_windows)

    results = {}
    if training_args.do_train:
        results.update(train(trainer, data_args.auto_resume, train_samples=len(examples["train"])))
    results.update(answer_requested(trainer, examples, tokenizer, max_seq_length, squad_args, data_args))
    return results


@command("litebert-squad")
def main(argv: list[str] | None = None) -> None:
    # returns nothing: the console script passes main's result to sys.exit, where anything else is a failure
    run(*parse_arguments(SquadArguments, argv), command=command_line("litebert-squad", argv))


if __name__ == "__main__":
    main()
