"""Helpers shared by the `litebert-*` training scripts."""

import json
import logging
import os
import shlex
import sys
from pathlib import Path

import datasets
import transformers
from transformers import Trainer, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from ..hub_cards import RUN_INFO_NAME
from ..trainer_callbacks import add_litebert_callbacks

logger = logging.getLogger("litebert")


def setup_logging(training_args: TrainingArguments) -> None:
    """Log to stdout: info on the main process, warnings elsewhere (as transformers' example scripts do)."""
    level = logging.INFO if training_args.should_log else logging.WARNING
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout, level=level)
    logger.setLevel(level)
    datasets.utils.logging.set_verbosity(logging.WARNING)
    transformers.utils.logging.set_verbosity(logging.WARNING)


def checkpoint_to_resume(training_args: TrainingArguments, auto_resume: bool) -> str | None:
    """`--resume_from_checkpoint` when given; otherwise, with `auto_resume`, the newest checkpoint in `output_dir`,
    so that a run killed mid-way continues where it stopped when started again with the same command."""
    if training_args.resume_from_checkpoint:
        if not os.path.isdir(training_args.resume_from_checkpoint):
            raise SystemExit(f"--resume_from_checkpoint {training_args.resume_from_checkpoint} is not a folder.")
        return training_args.resume_from_checkpoint
    if auto_resume and os.path.isdir(training_args.output_dir):
        last = get_last_checkpoint(training_args.output_dir)
        if last is not None:
            logger.info(f"Resuming from {last} (pass --auto_resume false to start over).")
        return last
    return None


def parse_config_overrides(text: str | None) -> dict:
    """'hidden_size=256,sharing=ffn,tupe_untie_cls=false' -> typed keyword arguments for the config."""
    overrides = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        if "=" not in item:
            raise SystemExit(f"--config_overrides entry {item!r} is not of the form name=value.")
        name, value = (part.strip() for part in item.split("=", 1))
        overrides[name] = _parse_value(value)
    return overrides


def _parse_value(value: str):
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def build_trainer(model, training_args: TrainingArguments, tokenizer, train_dataset=None, eval_dataset=None,
                  compute_metrics=None, data_collator=None, preprocess_logits_for_metrics=None) -> Trainer:
    """The stock Trainer with LiteBERT's logging callbacks; the tokenizer is saved along with the model."""
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset if training_args.do_train else None,
        eval_dataset=eval_dataset if training_args.do_eval else None,
        processing_class=tokenizer,
        data_collator=data_collator,
        compute_metrics=compute_metrics,
        preprocess_logits_for_metrics=preprocess_logits_for_metrics,
    )
    add_litebert_callbacks(trainer)
    return trainer


def command_line(program: str, argv: list[str] | None) -> str:
    """The shell command that runs `program` with `argv` (the process's own arguments when None)."""
    return shlex.join([program, *(sys.argv[1:] if argv is None else argv)])


def write_run_info(training_args: TrainingArguments, command: str, **info) -> None:
    """litebert_run.json in output_dir: the command of this run and what it trained on, for the model card."""
    if training_args.should_save:
        path = Path(training_args.output_dir, RUN_INFO_NAME)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"command": command, **info}, indent=2))
