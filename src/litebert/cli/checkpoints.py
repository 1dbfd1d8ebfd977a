"""Trainer checkpoints in an output folder: which one a run resumes from, whether it still fits the command, and
whether it already finished.

A process killed while the Trainer writes `checkpoint-N` leaves that folder incomplete. The Trainer writes
`trainer_state.json` last, so a checkpoint without a readable one (or with an unreadable weight, optimizer, scheduler
or RNG file) is skipped with a warning naming the file, and the run resumes from the previous complete checkpoint.
"""

import json
import logging
import re
import zipfile
from pathlib import Path

from safetensors import SafetensorError, safe_open
from transformers import (
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerState,
    TrainingArguments,
)

logger = logging.getLogger("litebert")

STATE_FILE = "trainer_state.json"  # written last by the Trainer: an interrupted save has none, or a truncated one
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX_FILE = "model.safetensors.index.json"
PICKLED_STATE_PATTERNS = ("optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state*.pth")  # torch.save zip archives
CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")
# config entries that save_pretrained (or the Trainer: use_cache) adds or rewrites: not part of what the run trains
SAVE_TIME_CONFIG_KEYS = {"architectures", "auto_map", "transformers_version", "_name_or_path", "dtype", "use_cache"}
RUNTIME_TOKENIZER_KEYS = {"truncation", "padding"}  # set per call, not part of the tokenizer itself


def model_folder_problem(folder: Path) -> str | None:
    """What makes the saved model `folder` unreadable (a missing or invalid config.json, a truncated or unreadable
    safetensors file), or None. Weights in other formats are left to transformers to check."""
    folder = Path(folder)
    problem = json_file_problem(folder / CONFIG_FILE)
    if problem or not (folder / WEIGHTS_INDEX_FILE).is_file():
        return problem or (safetensors_problem(folder / WEIGHTS_FILE) if (folder / WEIGHTS_FILE).is_file() else None)
    problem = json_file_problem(folder / WEIGHTS_INDEX_FILE)
    if problem:
        return problem
    shards = sorted(set(json.loads((folder / WEIGHTS_INDEX_FILE).read_text())["weight_map"].values()))
    return next(filter(None, (safetensors_problem(folder / shard) for shard in shards)), None)


def checkpoint_problem(folder: Path) -> str | None:
    """What makes the Trainer checkpoint `folder` impossible to resume from, or None when it is complete."""
    folder = Path(folder)
    has_weights = (folder / WEIGHTS_FILE).is_file() or (folder / WEIGHTS_INDEX_FILE).is_file()
    pickled = sorted(path for pattern in PICKLED_STATE_PATTERNS for path in folder.glob(pattern))
    problems = (
        json_file_problem(folder / STATE_FILE),
        None if has_weights else f"{folder / WEIGHTS_FILE} is missing",
        model_folder_problem(folder),
        *(f"{path} is truncated or damaged" for path in pickled if not zipfile.is_zipfile(path)),
    )
    return next(filter(None, problems), None)


def json_file_problem(path: Path) -> str | None:
    if not path.is_file():
        return f"{path} is missing"
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:  # invalid JSON, or not UTF-8
        return f"{path} is not valid JSON ({error})"
    return None


def safetensors_problem(path: Path) -> str | None:
    if not path.is_file():
        return f"{path} is missing"
    try:
        with safe_open(path, "pt"):  # reads the header and checks that the file covers every tensor it lists
            pass
    except (SafetensorError, OSError) as error:
        return f"{path} is truncated or damaged ({error})"
    return None


def checkpoint_folders(output_dir: str | Path) -> list[Path]:
    """The `checkpoint-N` folders of `output_dir`, newest (highest N) first."""
    folders = [path for path in Path(output_dir).iterdir() if path.is_dir() and CHECKPOINT_NAME.match(path.name)]
    return sorted(folders, key=lambda path: int(CHECKPOINT_NAME.match(path.name).group(1)), reverse=True)


def newest_complete_checkpoint(output_dir: str | Path) -> Path | None:
    for folder in checkpoint_folders(output_dir):
        problem = checkpoint_problem(folder)
        if problem is None:
            return folder
        logger.warning(f"Skipping {folder}: {problem} (a save that was interrupted?); trying the previous checkpoint.")
    return None


def checkpoint_to_resume(
    training_args: TrainingArguments,
    auto_resume: bool,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> str | None:
    """`--resume_from_checkpoint` when given; otherwise, with `auto_resume`, the newest complete checkpoint in
    `output_dir`, so that a run killed mid-way continues where it stopped when started again with the same command.
    Refuses (SystemExit) a checkpoint saved with another model config or tokenizer than `model` and `tokenizer`."""
    if training_args.resume_from_checkpoint:
        folder = Path(training_args.resume_from_checkpoint)
        if not folder.is_dir():
            raise SystemExit(f"--resume_from_checkpoint {folder} is not a folder.")
        problem = checkpoint_problem(folder)
        if problem:
            raise SystemExit(f"--resume_from_checkpoint {folder} cannot be resumed from: {problem}.")
    elif auto_resume and Path(training_args.output_dir).is_dir():
        folder = newest_complete_checkpoint(training_args.output_dir)
        if folder is None:
            return None
        logger.info(f"Resuming from {folder} (pass --auto_resume false to start over).")
    else:
        return None
    differences = config_differences(folder, model.config) + tokenizer_differences(folder, tokenizer)
    if differences:
        raise SystemExit(f"{folder} was saved by a different run: {'; '.join(differences)}. Run the command that "
                         "started it, or start over in a new --output_dir (or with --auto_resume false).")
    return str(folder)


def config_differences(folder: Path, config: PretrainedConfig) -> list[str]:
    """'name: saved X, now Y' for every config entry in which the checkpoint differs from `config`."""
    saved = _comparable_config(type(config).from_pretrained(folder))
    current = _comparable_config(config)
    return [f"{key} is {saved.get(key)!r} in the checkpoint but {current.get(key)!r} in this command"
            for key in sorted(saved.keys() | current.keys()) if saved.get(key) != current.get(key)]


def _comparable_config(config: PretrainedConfig) -> dict:
    as_saved = json.loads(config.to_json_string(use_diff=False))  # JSON round trip: tuples, integer keys
    return {key: value for key, value in as_saved.items() if key not in SAVE_TIME_CONFIG_KEYS}


def tokenizer_differences(folder: Path, tokenizer: PreTrainedTokenizerBase | None) -> list[str]:
    saved_path = folder / "tokenizer.json"
    if tokenizer is None or not tokenizer.is_fast or not saved_path.is_file():
        return []
    saved = json.loads(saved_path.read_text(encoding="utf-8"))
    current = json.loads(tokenizer.backend_tokenizer.to_str())
    differing = sorted(key for key in (saved.keys() | current.keys()) - RUNTIME_TOKENIZER_KEYS
                       if saved.get(key) != current.get(key))
    return [f"its tokenizer.json differs from this command's tokenizer ({', '.join(differing)})"] if differing else []


def reached_max_steps(checkpoint: str, training_args: TrainingArguments) -> bool:
    """Whether `checkpoint` already took the --max_steps optimizer steps asked for. (Runs counted in epochs need no
    check: the Trainer starts no epoch past the last one.)"""
    state = TrainerState.load_from_json(str(Path(checkpoint) / STATE_FILE))
    return 0 < training_args.max_steps <= state.global_step


def load_finished_checkpoint(trainer: Trainer, checkpoint: str) -> None:
    """Give `trainer` the weights and state of a checkpoint that needs no further training."""
    trainer._load_from_checkpoint(checkpoint)  # the loading Trainer.train(resume_from_checkpoint=...) itself does
    trainer.state = TrainerState.load_from_json(str(Path(checkpoint) / STATE_FILE))
