"""Check a LiteBERT model folder and upload it to the Hugging Face Hub.

    litebert-publish runs/sst2 --repo-id your-name/litebert-sst2 --dry-run   # check, list the files, change nothing
    litebert-publish runs/sst2 --repo-id your-name/litebert-sst2 [--private]

The folder must load for people without LiteBERT: weights in safetensors with a valid header and finite values (no
pickled files anywhere, whatever their extension's case or name), a config.json with an `auto_map`, the modeling code
it names (importable with `litebert` blocked), a tokenizer, and a valid model card (README.md; built from the folder
when missing). Symbolic links that lead outside the folder are refused, since the upload would send their targets;
links inside it are uploaded as the files they point to. Checkpoint folders, hidden files and `runs/` are not
uploaded. The card is uploaded as README.md itself, so the Hub shows the LiteBERT card, and its usage snippet names
--repo-id.

The folder's modeling code is executed only in a separate Python process (offline, in a temporary directory, with no
Hub token in its environment); this process never imports it. --dry-run runs that check too, and leaves the folder
exactly as it was: a card that the upload would write or update is only listed.
"""

import argparse
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub import HfApi, constants, get_token
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled
from safetensors import SafetensorError, safe_open

from ..hub_cards import CARD_NAME, check_model_card_text, model_card_for_folder, with_usage_for
from ..remote_code import check_loads_without_litebert
from ..tasks.io import DataFormatError, read_json_file
from .common import ArgumentParser, command

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".dill")
PICKLE_PROTOCOLS = range(2, 6)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
CODE_CHECK_NOTE = ("The folder's modeling code ran only in a separate Python process (offline, in a temporary "
                   "directory, without your Hub token); this process did not import it. That process had your user's "
                   "permissions: read modeling code you did not write before publishing it.")


class PublishError(Exception):
    """The folder cannot be published; the message lists every reason."""


@dataclass(frozen=True)
class PublishPlan:
    """What an upload sends: `files` (relative to `folder`, README.md included) and the model card's text, which
    differs from the folder's README.md (or the folder has none) when `card_changed`."""

    folder: Path
    files: list[Path]
    card: str
    card_changed: bool


def _is_skipped(relative: Path) -> bool:
    """Trainer checkpoints, logs (`runs/`), caches and hidden or `_`-prefixed entries are not uploaded."""
    return any(part.startswith((".", "_", "checkpoint-")) or part == "runs" for part in relative.parts)


def _entries(folder: Path) -> list[Path]:
    """Every entry under `folder` that is not skipped, relative to it; symlinked folders are listed, not entered."""
    entries = []
    for root, directories, names in os.walk(folder):
        base = Path(root).relative_to(folder)
        directories[:] = sorted(name for name in directories if not _is_skipped(base / name))
        entries += [base / name for name in [*directories, *names] if not _is_skipped(base / name)]
    return sorted(entries)


def _leaves_folder(folder: Path, relative: Path) -> bool:
    return not (folder / relative).resolve().is_relative_to(folder.resolve())


def files_to_upload(folder: Path) -> list[Path]:
    """The files an upload sends, relative to `folder`: regular files, and symlinks to files inside the folder."""
    return [relative for relative in _entries(folder)
            if (folder / relative).is_file() and not _leaves_folder(folder, relative)]


def _link_problems(folder: Path) -> list[str]:
    return [problem for relative in _entries(folder) if (problem := _link_problem(folder, relative))]


def _link_problem(folder: Path, relative: Path) -> str | None:
    path = folder / relative
    if not path.is_symlink():
        return None
    if _leaves_folder(folder, relative):
        return (f"{relative} is a symlink to {os.readlink(path)}, outside the folder: the upload would send what "
                "it points to; copy what it should hold into the folder, or remove the link")
    if not path.exists():
        return f"{relative} is a broken symlink (to {os.readlink(path)})"
    return None


def _pickle_problems(folder: Path, files: list[Path]) -> list[str]:
    problems = []
    for path in files:
        if path.suffix.lower() in PICKLE_SUFFIXES:
            problems.append(f"{path} is a pickle file ({path.suffix} files are), which loading would have to "
                            "unpickle; weights belong in safetensors and training arguments in training_args.json "
                            "(delete it, or save with safe_serialization)")
        elif path.suffix != ".safetensors" and _holds_pickle(folder / path):
            problems.append(f"{path} holds pickled data (a pickle or a torch.save archive), which loading would "
                            "have to unpickle; delete it, or store its tensors in safetensors")
    return problems


def _holds_pickle(path: Path) -> bool:
    """Recognise pickles by their content, whatever the file is named: a pickle of protocol 2+ starts with 0x80 and
    the protocol number; torch.save writes a zip archive holding `data.pkl`."""
    with open(path, "rb") as file:
        head = file.read(4)
    if len(head) >= 2 and head[0] == 0x80 and head[1] in PICKLE_PROTOCOLS:
        return True
    if head != b"PK\x03\x04":
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith(".pkl") for name in archive.namelist())
    except zipfile.BadZipFile:
        return False


def _weight_problems(folder: Path, names: set[str]) -> list[str]:
    if "model.safetensors" in names:
        return _safetensors_problems(folder, "model.safetensors")
    if "model.safetensors.index.json" not in names:
        return ["no weights: expected model.safetensors (or model.safetensors.index.json with its shards)"]
    try:
        index = read_json_file(folder / "model.safetensors.index.json")
    except DataFormatError as err:
        return [str(err)]
    if not isinstance(index, dict) or not isinstance(index.get("weight_map"), dict):
        return ["model.safetensors.index.json has no weight_map object (tensor name -> shard file)"]
    shards = sorted(set(index["weight_map"].values()))
    missing = [shard for shard in shards if shard not in names]
    if missing:
        return [f"model.safetensors.index.json names missing shard(s): {', '.join(missing)}"]
    return [problem for shard in shards for problem in _safetensors_problems(folder, shard)]


def _safetensors_problems(folder: Path, name: str) -> list[str]:
    """A safetensors file must parse (header and offsets) and hold finite weights only."""
    try:
        with safe_open(folder / name, framework="pt") as weights:
            tensor_names = list(weights.keys())
            broken = [tensor for tensor in tensor_names if not _is_finite(weights.get_tensor(tensor))]
    except SafetensorError as err:
        return [f"{name} is not a valid safetensors file ({err}); save the model again with save_pretrained"]
    if not tensor_names:
        return [f"{name} holds no tensors"]
    if broken:
        shown = ", ".join(broken[:3]) + (f" and {len(broken) - 3} more" if len(broken) > 3 else "")
        return [f"{name}: {len(broken)} of {len(tensor_names)} tensors hold NaN or infinite values ({shown}); "
                "the weights are broken (a diverged run?) and would give NaN outputs"]
    return []


def _is_finite(tensor: torch.Tensor) -> bool:
    return not tensor.is_floating_point() or bool(torch.isfinite(tensor).all())


def _config_problems(folder: Path, names: set[str]) -> list[str]:
    if "config.json" not in names:
        return ["no config.json"]
    try:
        config = read_json_file(folder / "config.json")
    except DataFormatError as err:
        return [str(err)]
    if config.get("model_type") != "litebert":
        return [f"config.json has model_type {config.get('model_type')!r}; expected 'litebert'"]
    auto_map = config.get("auto_map") or {}
    problems = [f"config.json auto_map has no {name} entry (save the model with LiteBERT's save_pretrained)"
                for name in ("AutoConfig", "AutoModel") if name not in auto_map]
    modules = sorted({reference.split(".")[0] + ".py" for reference in auto_map.values()})
    problems += [f"{module} is missing: auto_map points stock transformers at it" for module in modules
                 if module not in names]
    return problems


def _tokenizer_problems(names: set[str]) -> list[str]:
    if any(name in names for name in TOKENIZER_FILES):
        return []
    return [f"no tokenizer: expected {' or '.join(TOKENIZER_FILES)} (save the tokenizer into the folder)"]


def _import_problems(folder: Path) -> list[str]:
    try:
        check_loads_without_litebert(folder)
    except RuntimeError as err:
        last_line = str(err).strip().splitlines()[-1]
        return [f"the folder's code does not load without litebert installed: {last_line}"]
    return []


def _refuse(folder: Path, problems: list[str]) -> None:
    if problems:
        raise PublishError(f"{folder} cannot be published:\n" + "\n".join(f"  - {problem}" for problem in problems))


def check_folder(folder: str | Path, repo_id: str | None = None, card_options: dict | None = None) -> PublishPlan:
    """Check that `folder` can be published and loaded by others; returns what the upload would send. Changes
    nothing in the folder. The card is the folder's README.md with its usage snippet naming `repo_id`, or a card
    built from the folder when it has none or `card_options` (base_model, license, language) are given. The
    folder's code is executed (in a separate process) only once every other check has passed. Raises PublishError
    naming each problem."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PublishError(f"{folder} is not a folder")
    files = files_to_upload(folder)
    names = {str(path) for path in files}
    problems = _link_problems(folder) + _pickle_problems(folder, files) + _weight_problems(folder, names)
    problems += _config_problems(folder, names) + _tokenizer_problems(names)
    _refuse(folder, problems)
    _refuse(folder, _import_problems(folder))
    card = _card_for_upload(folder, names, repo_id, card_options)
    _refuse(folder, _card_problems(card, folder / CARD_NAME))
    card_changed = CARD_NAME not in names or (folder / CARD_NAME).read_text(encoding="utf-8") != card
    return PublishPlan(folder, sorted({*files, Path(CARD_NAME)}), card, card_changed)


def _card_for_upload(folder: Path, names: set[str], repo_id: str | None, card_options: dict | None) -> str:
    if CARD_NAME in names and not card_options:
        existing = (folder / CARD_NAME).read_text(encoding="utf-8")
        return with_usage_for(existing, repo_id) if repo_id else existing
    naming = {"repo_id": repo_id, "model_name": repo_id.split("/")[-1]} if repo_id else {}
    return str(model_card_for_folder(folder, **(card_options or {}), **naming))


def _card_problems(card: str, path: Path) -> list[str]:
    try:
        check_model_card_text(card, path)
    except ValueError as err:
        return [str(err)]
    return []


def describe_upload(plan: PublishPlan) -> str:
    sizes = [len(plan.card.encode()) if str(path) == CARD_NAME else (plan.folder / path).stat().st_size
             for path in plan.files]
    notes = [_card_note(plan) if str(path) == CARD_NAME else "" for path in plan.files]
    width = max(len(str(path)) for path in plan.files)
    lines = [f"  {str(path):<{width}}  {_human_size(size):>9}{note}"
             for path, size, note in zip(plan.files, sizes, notes)]
    lines.append(f"  {len(plan.files)} files, {_human_size(sum(sizes))}")
    return "\n".join(lines)


def _card_note(plan: PublishPlan) -> str:
    if not plan.card_changed:
        return ""
    kind = "updated" if (plan.folder / CARD_NAME).is_file() else "new"
    return f"  ({kind} card, written into the folder when uploading)"


def _human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024


def upload(plan: PublishPlan, repo_id: str, private: bool, token: str | None, commit_message: str) -> str:
    """Write the card into the folder when it changed, create the repository when needed and upload the plan's
    files in one commit; returns the commit URL."""
    token = token or get_token()
    if token is None:
        raise PublishError("not logged in to the Hugging Face Hub: run `hf auth login`, set HF_TOKEN or pass --token")
    if plan.card_changed:
        (plan.folder / CARD_NAME).write_text(plan.card, encoding="utf-8")
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        commit = api.upload_folder(repo_id=repo_id, folder_path=plan.folder, commit_message=commit_message,
                                   allow_patterns=[str(path) for path in plan.files])
    except OfflineModeIsEnabled:
        raise PublishError("cannot reach the Hugging Face Hub: offline mode is on (HF_HUB_OFFLINE=1); unset it to "
                           "upload, or use --dry-run to check the folder without uploading") from None
    except HfHubHTTPError as err:
        raise PublishError(_http_error_message(err, repo_id)) from None
    except ValueError as err:  # the Hub's YAML check of README.md, run before the commit
        raise PublishError(f"the Hub rejected the model card: {err}") from None
    except Exception as err:
        if type(err).__module__.split(".")[0] not in ("httpx", "httpx2"):
            raise
        raise PublishError(f"cannot reach the Hugging Face Hub at {constants.ENDPOINT}: {err}. Check the network "
                           "connection (and HF_ENDPOINT / proxy settings); --dry-run checks the folder "
                           "offline") from None
    return commit.commit_url


def _http_error_message(err: HfHubHTTPError, repo_id: str) -> str:
    status = err.response.status_code if err.response is not None else None
    if status == 401:
        return "the Hub rejected the token (401): run `hf auth login` again or pass a valid --token"
    if status == 403:
        return f"the token may not write to {repo_id} (403): use a write token, or a namespace you own"
    return f"the Hub refused the upload ({status}): {err}"


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(prog="litebert-publish", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path,
                        help="a saved LiteBERT model folder (save_pretrained / a script's output_dir)")
    parser.add_argument("--repo-id", "--repo_id", required=True,
                        help="the Hub repository, e.g. your-name/model; the card's usage snippet names it")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--dry-run", "--dry_run", action="store_true",
                        help="check and list the files; upload nothing and leave the folder unchanged")
    parser.add_argument("--token", default=None, help="a Hub write token (default: the stored login or HF_TOKEN)")
    parser.add_argument("--commit-message", "--commit_message", default="Upload LiteBERT model")
    card = parser.add_argument_group("model card", "given any of these, README.md is rebuilt from the folder")
    card.add_argument("--base-model", "--base_model", help="Hub id of the model this one was converted or tuned from")
    card.add_argument("--license", help="license id, e.g. apache-2.0 (default), mit")
    card.add_argument("--language", nargs="+", help="language code(s) of the training data (default: en)")
    return parser.parse_args(argv)


def card_options(args: argparse.Namespace) -> dict:
    options = {"base_model": args.base_model, "license": args.license,
               "language": args.language[0] if args.language and len(args.language) == 1 else args.language}
    return {name: value for name, value in options.items() if value}


def dry_run_summary(plan: PublishPlan) -> str:
    card = " (the card listed above was not written)" if plan.card_changed else ""
    return f"Dry run: nothing was uploaded and the folder was not changed{card}."


@command("litebert-publish")
def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(argv)
    try:
        plan = check_folder(args.folder, args.repo_id, card_options(args))
        print(f"{args.folder} is ready for {args.repo_id}; files to upload:")
        print(describe_upload(plan))
        print(CODE_CHECK_NOTE)
        if args.dry_run:
            print(dry_run_summary(plan))
            return
        url = upload(plan, args.repo_id, args.private, args.token, args.commit_message)
    except PublishError as err:
        raise SystemExit(str(err)) from None
    print(f"Uploaded: {url}")


if __name__ == "__main__":
    main()
