"""What the fine-tuning scripts (`litebert.cli.glue`, `litebert.cli.squad`, `litebert.cli.race`) share: the model and
data arguments, loading a LiteBERT (or converting a BERT/ALBERT checkpoint on the fly) and the data helpers; building
the Trainer and the train / save-metrics steps come from `litebert.cli.common`.

A script defines only its task arguments and its data handling:

    model_args, data_args, task_args, training_args = parse_arguments(GlueArguments, argv)
    setup_logging(training_args)
    tokenizer = load_tokenizer(model_args)
    seed_everything(training_args)  # the new head's initial weights follow --seed
    model = load_model(LiteBertForSequenceClassification, model_args, num_labels=2)
    trainer = build_trainer(model, training_args, tokenizer, train_dataset, eval_dataset, compute_metrics)
    train(trainer, data_args.auto_resume, train_samples=len(train_dataset))
    save_metrics(trainer, "eval", trainer.evaluate())
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from transformers import (
    AutoConfig,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainingArguments,
)

from ..convert import CONVERTERS, source_class
from ..pretraining_data import check_max_seq_length
from .common import check_local_path, check_model_folder, logger, parse_dataclass_arguments, write_run_info


@dataclass
class FinetuningModelArguments:
    model_name_or_path: str = field(
        metadata={"help": "a LiteBERT folder, or a local transformers BERT/ALBERT folder (converted on loading)"}
    )
    tokenizer_name: str | None = field(default=None, metadata={"help": "tokenizer folder (default: the model's)"})
    ignore_mismatched_sizes: bool = field(
        default=False, metadata={"help": "start a new head when the checkpoint's head has another number of labels"}
    )


@dataclass
class FinetuningDataArguments:
    dataset_name: str | None = field(default=None, metadata={"help": "a `datasets` dataset instead of local files"})
    train_file: str | None = None
    validation_file: str | None = None
    test_file: str | None = None
    data_dir: str | None = field(default=None, metadata={"help": "the task's original data folder"})
    max_seq_length: int | None = field(
        default=None, metadata={"help": "tokens per input (default: 128 for GLUE, 384 for SQuAD, 512 for RACE)"}
    )
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    max_predict_samples: int | None = None
    preprocessing_num_workers: int | None = None
    auto_resume: bool = field(default=True, metadata={"help": "resume from the newest checkpoint in output_dir"})


def parse_arguments(task_arguments: type, argv: list[str] | None = None) -> tuple:
    """(model_args, data_args, task_args, training_args) from the command line (or `argv`)."""
    dataclass_types = (FinetuningModelArguments, FinetuningDataArguments, task_arguments, TrainingArguments)
    return parse_dataclass_arguments(dataclass_types, argv)


def load_tokenizer(model_args: FinetuningModelArguments) -> PreTrainedTokenizerBase:
    check_local_path("--model_name_or_path", model_args.model_name_or_path)
    check_local_path("--tokenizer_name", model_args.tokenizer_name)
    return AutoTokenizer.from_pretrained(model_args.tokenizer_name or model_args.model_name_or_path)


def load_config(model_args: FinetuningModelArguments) -> PretrainedConfig:
    """The config of --model_name_or_path; a local folder's config and safetensors weights are checked readable."""
    check_model_folder("--model_name_or_path", model_args.model_name_or_path)
    return AutoConfig.from_pretrained(model_args.model_name_or_path)


def load_model(
    model_class: type[PreTrainedModel], model_args: FinetuningModelArguments, **config_kwargs: object
) -> PreTrainedModel:
    """`model_class` (a LiteBERT head) from a LiteBERT folder, or from a BERT/ALBERT folder: the matching transformers
    head (BertForSequenceClassification, ...) is loaded with the same config changes, then converted, so the encoder
    weights carry over and only the new head starts from scratch."""
    path = model_args.model_name_or_path
    config = load_config(model_args)
    if config.model_type in CONVERTERS:
        _, converter = CONVERTERS[config.model_type]
        logger.info(f"Converting the {config.model_type} checkpoint {path} into a {model_class.__name__}")
        source = source_class(config.model_type, model_class).from_pretrained(
            path, ignore_mismatched_sizes=model_args.ignore_mismatched_sizes, **config_kwargs
        )
        return converter(source)
    if config.model_type != "litebert":
        raise SystemExit(f"{path} holds a {config.model_type!r} model; expected litebert, {', '.join(CONVERTERS)}.")
    return model_class.from_pretrained(
        path, ignore_mismatched_sizes=model_args.ignore_mismatched_sizes, **config_kwargs
    )


def describe_run(
    model: PreTrainedModel,
    task: str,
    command: str,
    model_args: FinetuningModelArguments,
    data_args: FinetuningDataArguments,
    training_args: TrainingArguments,
    **info: object,
) -> None:
    """Name the task in the model's config and write litebert_run.json (with `info`): what the model card reports."""
    model.config.finetuning_task = task
    source = model_args.model_name_or_path
    files = [data_args.train_file, data_args.validation_file, data_args.test_file, data_args.data_dir]
    info.setdefault("base_model", None if Path(source).exists() else source)  # a Hub id; local folders have none
    write_run_info(training_args, command, task=task, dataset_name=data_args.dataset_name,
                   data_files=[path for path in files if path], **info)


def resolve_max_seq_length(data_args: FinetuningDataArguments, default: int, config: PretrainedConfig) -> int:
    """--max_seq_length, or the task's default capped by the model's positions; an explicit value too large fails."""
    max_position_embeddings = config.max_position_embeddings
    if data_args.max_seq_length is None:
        return min(default, max_position_embeddings)
    try:
        check_max_seq_length(data_args.max_seq_length, max_position_embeddings)
    except ValueError as err:
        raise SystemExit(f"--max_seq_length: {err}") from None
    return data_args.max_seq_length


def first_samples(dataset: datasets.Dataset, limit: int | None) -> datasets.Dataset:
    """The first `limit` rows (all of them without a limit)."""
    return dataset if limit is None else dataset.select(range(min(limit, len(dataset))))


def require_split(splits: Mapping[str, datasets.Dataset], name: str, flag: str, hint: str) -> datasets.Dataset:
    if name not in splits:
        raise SystemExit(f"{flag} needs a {name} split: {hint}")
    return splits[name]


def with_prefix(prefix: str, metrics: dict) -> dict:
    return {f"{prefix}_{name}": value for name, value in metrics.items()}


def write_json(trainer: Trainer, name: str, content: object) -> Path | None:
    """Write `content` to output_dir/name on the main process only."""
    if not trainer.is_world_process_zero():
        return None
    path = Path(trainer.args.output_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2, ensure_ascii=False), encoding="utf-8")
    return path
