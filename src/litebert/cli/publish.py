"""Check a LiteBERT model folder and upload it to the Hugging Face Hub.

    litebert-publish runs/sst2 --repo-id your-name/litebert-sst2 --dry-run   # check, list the files, upload nothing
    litebert-publish runs/sst2 --repo-id your-name/litebert-sst2 [--private]

The folder must load for people without LiteBERT: weights in safetensors (no pickled `.bin`/`.pt` files anywhere),
a config.json with an `auto_map`, the modeling code it names (importable with `litebert` blocked), a tokenizer, and
a valid model card (README.md; written from the folder when missing). Checkpoint folders, hidden files and
`runs/` are not uploaded. The card is uploaded as README.md itself, so the Hub shows the LiteBERT card.
"""

import argparse
from pathlib import Path

from huggingface_hub import HfApi, constants, get_token
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

from ..hub_cards import CARD_NAME, check_model_card, write_model_card
from ..remote_code import check_loads_without_litebert
from ..tasks.io import DataFormatError, read_json_file
from .common import ArgumentParser, command

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


class PublishError(Exception):
    """The folder cannot be published; the message lists every reason."""


def files_to_upload(folder: Path) -> list[Path]:
    """Every file under `folder` except Trainer checkpoints, logs (`runs/`), caches and hidden or `_`-prefixed
    files, as paths relative to `folder`."""
    selected = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        skipped = any(part.startswith((".", "_", "checkpoint-")) or part == "runs" for part in relative.parts)
        if path.is_file() and not skipped:
            selected.append(relative)
    return selected


def check_folder(folder: str | Path, card_options: dict | None = None) -> list[Path]:
    """Check that `folder` can be published and loaded by others; returns the files to upload (relative paths).
    Writes the model card when the folder has none, or rebuilds it with `card_options` (base_model, license,
    language, repo_id) when given. Raises PublishError naming each problem."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PublishError(f"{folder} is not a folder")
    files = files_to_upload(folder)
    names = {str(path) for path in files}
    problems = [f"{path} is a pickle file, which loading would have to unpickle; weights belong in safetensors and "
                "training arguments in training_args.json (delete it, or save with safe_serialization)"
                for path in files if path.suffix in PICKLE_SUFFIXES]
    problems += _weight_problems(folder, names)
    config_problems = _config_problems(folder, names)
    problems += config_problems
    if not any(name in names for name in TOKENIZER_FILES):
        problems.append(f"no tokenizer: expected {' or '.join(TOKENIZER_FILES)} (save the tokenizer into the folder)")
    elif not config_problems:
        problems += _import_problems(folder)
    if problems:
        raise PublishError(f"{folder} cannot be published:\n" + "\n".join(f"  - {problem}" for problem in problems))
    if CARD_NAME not in names or card_options:
        write_model_card(folder, **(card_options or {}))
        files = files_to_upload(folder)
    try:
        check_model_card(folder / CARD_NAME)
    except ValueError as err:
        raise PublishError(f"{folder} cannot be published:\n  - {err}") from None
    return files


def _weight_problems(folder: Path, names: set[str]) -> list[str]:
    if "model.safetensors" in names:
        return []
    if "model.safetensors.index.json" not in names:
        return ["no weights: expected model.safetensors (or model.safetensors.index.json with its shards)"]
    shards = set(read_json_file(folder / "model.safetensors.index.json")["weight_map"].values())
    missing = sorted(shard for shard in shards if shard not in names)
    return [f"model.safetensors.index.json names missing shard(s): {', '.join(missing)}"] if missing else []


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


def _import_problems(folder: Path) -> list[str]:
    try:
        check_loads_without_litebert(folder)
    except RuntimeError as err:
        last_line = str(err).strip().splitlines()[-1]
        return [f"the folder's code does not load without litebert installed: {last_line}"]
    return []


def describe_upload(folder: Path, files: list[Path]) -> str:
    sizes = [(folder / path).stat().st_size for path in files]
    width = max(len(str(path)) for path in files)
    lines = [f"  {str(path):<{width}}  {_human_size(size):>9}" for path, size in zip(files, sizes)]
    lines.append(f"  {len(files)} files, {_human_size(sum(sizes))}")
    return "\n".join(lines)


def _human_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024


def upload(folder: Path, files: list[Path], repo_id: str, private: bool, token: str | None,
           commit_message: str) -> str:
    """Create the repository when needed and upload `files` in one commit; returns the commit URL."""
    token = token or get_token()
    if token is None:
        raise PublishError("not logged in to the Hugging Face Hub: run `hf auth login`, set HF_TOKEN or pass --token")
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        commit = api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=commit_message,
                                   allow_patterns=[str(path) for path in files])
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
                           "connection (and HF_ENDPOINT / proxy settings); --dry-run checks the folder offline") from None
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
    parser.add_argument("folder", type=Path, help="a saved LiteBERT model folder (save_pretrained / a script's output_dir)")
    parser.add_argument("--repo-id", "--repo_id", required=True, help="the Hub repository, e.g. your-name/model")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--dry-run", "--dry_run", action="store_true", help="check and list the files, upload nothing")
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
    options = {name: value for name, value in options.items() if value}
    return {**options, "repo_id": args.repo_id} if options else {}


@command("litebert-publish")
def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(argv)
    try:
        files = check_folder(args.folder, card_options(args))
        print(f"{args.folder} is ready for {args.repo_id}; files to upload:")
        print(describe_upload(args.folder, files))
        if args.dry_run:
            print("Dry run: nothing was uploaded.")
            return
        url = upload(args.folder, files, args.repo_id, args.private, args.token, args.commit_message)
    except PublishError as err:
        raise SystemExit(str(err)) from None
    print(f"Uploaded: {url}")


if __name__ == "__main__":
    main()
