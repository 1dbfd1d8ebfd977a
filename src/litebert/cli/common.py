"""Helpers shared by the `litebert-*` command-line scripts: one-line errors, argument parsing, seeding, logging,
the Trainer, resuming from checkpoints and the files a run records."""

import argparse
import copy
import functools
import json
import logging
import shlex
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import datasets
import transformers
from datasets import Dataset, IterableDataset
from datasets.exceptions import DatasetGenerationError
from safetensors import SafetensorError
from transformers import (
    EvalPrediction,
    HfArgumentParser,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainingArguments,
)
from transformers.debug_utils import DebugOption
from transformers.trainer_utils import enable_full_determinism, set_seed

from ..hub_cards import RUN_INFO_NAME
from ..trainer_callbacks import TrainingDivergedError, add_litebert_callbacks, replace_pickled_training_args
from .checkpoints import checkpoint_to_resume, load_finished_checkpoint, model_folder_problem, reached_max_steps

logger = logging.getLogger("litebert")

USAGE_ERROR_STATUS = 2  # as argparse exits on a bad command line
DEBUG_FLAG = "--debug"
# problems with what a command was given (arguments, files, checkpoints, a run that diverged): reported in one line
REPORTED_ERRORS = (ValueError, OSError, SafetensorError, TrainingDivergedError)


def command(program: str) -> Callable[[Callable[[list[str]], None]], Callable[[list[str] | None], None]]:
    """Decorator for a script's `main(argv=None)`. Its errors that come from the command's input (SystemExit
    messages, REPORTED_ERRORS, datasets' wrapping of them) end the process with one line `program: error: ...` on
    stderr and exit status 2; with --debug anywhere on the command line the traceback is printed first."""

    def decorate(main: Callable[[list[str]], None]) -> Callable[[list[str] | None], None]:
        @functools.wraps(main)
        def main_with_clean_errors(argv: list[str] | None = None) -> None:
            argv = list(sys.argv[1:] if argv is None else argv)
            debug = DEBUG_FLAG in argv
            try:
                main(without_debug_flag(argv))
            except SystemExit as stop:
                if not isinstance(stop.code, str):  # a plain status, e.g. --help's 0
                    raise
                exit_with_error(program, stop.code, stop if debug else None)
            except (*REPORTED_ERRORS, DatasetGenerationError) as error:
                reported = reported_cause(error)
                if reported is None:
                    raise
                exit_with_error(program, str(reported), error if debug else None)

        return main_with_clean_errors

    return decorate


def without_debug_flag(argv: list[str]) -> list[str]:
    """argv without the --debug that asks for tracebacks. `--debug underflow_overflow` (TrainingArguments' own
    --debug, which takes transformers' debug options) stays for the Trainer."""
    debug_options = {option.value for option in DebugOption}
    kept = []
    for argument, following in zip(argv, [*argv[1:], ""]):
        takes_debug_options = bool(following.split()) and set(following.split()) <= debug_options
        if argument != DEBUG_FLAG or takes_debug_options:
            kept.append(argument)
    return kept


def reported_cause(error: BaseException) -> BaseException | None:
    """The error to report in one line: `error` itself, or for datasets' DatasetGenerationError (raised around any
    error of a dataset's generator, e.g. a corpus line that is not UTF-8) the error it wraps; None to show the
    traceback of an unexpected error."""
    if isinstance(error, DatasetGenerationError):
        cause = error.__cause__ or error.__context__
        return cause if isinstance(cause, REPORTED_ERRORS) else None
    return error


def exit_with_error(program: str, message: str, debug_error: BaseException | None) -> NoReturn:
    if debug_error is not None:
        traceback.print_exception(debug_error)
    print(f"{program}: error: {one_line(message)}", file=sys.stderr, flush=True)
    raise SystemExit(USAGE_ERROR_STATUS)


def one_line(message: str) -> str:
    """A message on one line: a first line followed by a list ('  - reason' lines) becomes 'first: a; b'."""
    lines = [line.strip().removeprefix("- ") for line in str(message).splitlines() if line.strip()]
    if len(lines) <= 1:
        return "".join(lines)
    return f"{lines[0]} {'; '.join(lines[1:])}"


class OneLineUsageErrors:
    """argparse mixin: a bad command line is reported like every other error, in one line (usage stays in --help,
    which also tells about --debug)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("epilog", f"Errors are reported in one line, with exit status {USAGE_ERROR_STATUS}; add "
                                    f"{DEBUG_FLAG} to see the traceback.")
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise SystemExit(f"{message} (see --help)")


class ArgumentParser(OneLineUsageErrors, argparse.ArgumentParser):
    pass


class DataclassArgumentParser(OneLineUsageErrors, HfArgumentParser):
    pass


def parse_dataclass_arguments(dataclass_types: tuple[type, ...], argv: list[str] | None = None) -> tuple:
    """The dataclasses of HfArgumentParser from the command line (or `argv`); an unknown flag is a usage error. A
    command line that is a single `.json` file reads every argument from that file instead, as transformers'
    example scripts do (`litebert-glue args.json`)."""
    argv = sys.argv[1:] if argv is None else argv
    parser = DataclassArgumentParser(dataclass_types)
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parse_arguments_file(parser, Path(argv[0]))
    *parsed, unknown = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return tuple(parsed)


def parse_arguments_file(parser: HfArgumentParser, path: Path) -> tuple:
    """The dataclasses from a JSON object of argument names (without the dashes) and values."""
    if not path.is_file():
        raise SystemExit(f"arguments file {path}: no such file.")
    try:
        arguments = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SystemExit(f"arguments file {path} is not JSON: {error}.") from None
    if not isinstance(arguments, dict):
        raise SystemExit(f"arguments file {path} must hold one JSON object of argument names and values.")
    try:
        return tuple(parser.parse_dict(arguments))
    except (ValueError, TypeError) as error:  # unknown names; a missing required argument
        raise SystemExit(f"arguments file {path}: {error}") from None


def check_local_path(flag: str, value: str | None) -> None:
    """A value written as a local path (absolute, ./, ../, ~, or several folders deep) that does not exist is refused
    as a missing folder, instead of transformers' complaint that it is no valid Hub repository id."""
    looks_local = value and (value.startswith(("/", ".", "~")) or value.count("/") > 1)
    if looks_local and not Path(value).expanduser().exists():
        raise SystemExit(f"{flag} {value}: no such folder.")


def check_model_folder(flag: str, path: str) -> None:
    """A local model folder given by `flag` exists and its config and safetensors weights are readable."""
    check_local_path(flag, path)
    problem = model_folder_problem(path) if Path(path).is_dir() else None
    if problem:
        raise SystemExit(f"{flag} {path} cannot be loaded: {problem}.")


def setup_logging(training_args: TrainingArguments) -> None:
    """Log to stdout: info on the main process, warnings elsewhere (as transformers' example scripts do)."""
    level = logging.INFO if training_args.should_log else logging.WARNING
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout, level=level)
    logger.setLevel(level)
    datasets.utils.logging.set_verbosity(logging.WARNING)
    transformers.utils.logging.set_verbosity(logging.WARNING)


def seed_everything(training_args: TrainingArguments) -> None:
    """Seed Python, numpy and torch from --seed (and with --full_determinism, turn on deterministic algorithms) as
    the Trainer does, but before the model is built: a new model's initial weights, and a new head's, follow --seed."""
    if training_args.full_determinism:
        enable_full_determinism(training_args.seed)
    else:
        set_seed(training_args.seed)


def parse_config_overrides(text: str | None, config: PretrainedConfig) -> dict:
    """'hidden_size=256,sharing=ffn,tupe_untie_cls=false' -> keyword arguments for `config`'s class, read as
    `PretrainedConfig.update_from_string` reads them: every name must be a field of `config`, and each value takes
    the type of that field's current value (bool: true/false, 1/0, yes/no). The caller builds a new config from them,
    so the combination is validated as any config is."""
    if not text:
        return {}
    items = [item.strip() for item in text.split(",")]
    malformed = next((item for item in items if item.count("=") != 1), None)
    if malformed is not None:
        raise SystemExit(f"--config_overrides entry {malformed!r} is not of the form name=value.")
    scratch = copy.deepcopy(config)
    try:
        scratch.update_from_string(",".join(items))
    except (ValueError, TypeError) as error:
        raise SystemExit(f"--config_overrides {text!r}: {error}.") from None
    return {item.split("=")[0]: getattr(scratch, item.split("=")[0]) for item in items}


def build_trainer(
    model: PreTrainedModel,
    training_args: TrainingArguments,
    tokenizer: PreTrainedTokenizerBase,
    train_dataset: Dataset | IterableDataset | None = None,
    eval_dataset: Dataset | IterableDataset | None = None,
    compute_metrics: Callable[[EvalPrediction], dict] | None = None,
    data_collator: Callable[[list[dict]], dict] | None = None,
    preprocess_logits_for_metrics: Callable[[Any, Any], Any] | None = None,
    trainer_class: type[Trainer] = Trainer,
    **trainer_options: Any,
) -> Trainer:
    """The stock Trainer (or `trainer_class`, with its own `trainer_options`) with LiteBERT's logging callbacks; the
    tokenizer is saved along with the model."""
    trainer = trainer_class(
        model=model,
        args=training_args,
        train_dataset=train_dataset if training_args.do_train else None,
        eval_dataset=eval_dataset if training_args.do_eval else None,
        processing_class=tokenizer,
        data_collator=data_collator,
        compute_metrics=compute_metrics,
        preprocess_logits_for_metrics=preprocess_logits_for_metrics,
        **trainer_options,
    )
    add_litebert_callbacks(trainer)
    return trainer


def train(trainer: Trainer, auto_resume: bool, **extra_metrics) -> dict:
    """Train, resuming from the newest complete checkpoint when there is one (see `checkpoint_to_resume`), then save
    the model, the train metrics (with `extra_metrics`) and the Trainer state. A checkpoint that already took
    --max_steps steps is not trained further: its weights are saved as the model, and no train metrics are written
    again (the run that trained it wrote them). Returns the train metrics ({} in that case)."""
    resume = checkpoint_to_resume(trainer.args, auto_resume, trainer.model, trainer.processing_class)
    metrics = {}
    if resume is not None and reached_max_steps(resume, trainer.args):
        logger.info(f"{resume} already took the --max_steps {trainer.args.max_steps} steps: saved as it is, no further "
                    "training.")
        load_finished_checkpoint(trainer, resume)
    else:
        metrics = {**trainer.train(resume_from_checkpoint=resume).metrics, **extra_metrics}
    trainer.save_model()
    replace_pickled_training_args(trainer.args)
    if metrics:
        save_metrics(trainer, "train", metrics)
    trainer.save_state()
    return metrics


def save_metrics(trainer: Trainer, split: str, metrics: dict) -> None:
    """Log and write {split}_results.json, merged into all_results.json."""
    trainer.log_metrics(split, metrics)
    trainer.save_metrics(split, metrics)


def command_line(program: str, argv: list[str] | None) -> str:
    """The shell command that runs `program` with `argv` (the process's own arguments when None)."""
    return shlex.join([program, *(sys.argv[1:] if argv is None else argv)])


def write_run_info(training_args: TrainingArguments, command: str, **info) -> None:
    """litebert_run.json in output_dir: the command of this run and what it trained on, for the model card."""
    if training_args.should_save:
        path = Path(training_args.output_dir, RUN_INFO_NAME)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"command": command, **info}, indent=2))
