"""Files a pretraining run prepares in its output folder before training (tokenizer, rare-word vocabulary, default
corpus): written so that a process killed meanwhile leaves no half-written file behind, and reused by a later run only
when they were made from the same inputs.

What each file was made from (corpus contents, settings) is recorded in `.litebert_inputs.json`, after the file
itself: a file without a record is made again, and a recorded one made from other inputs is refused, naming them.
"""

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

RECORD_NAME = ".litebert_inputs.json"  # hidden: not uploaded by litebert-publish

T = TypeVar("T")


def file_fingerprints(paths: Iterable[str | os.PathLike[str]]) -> list[dict]:
    """[{path, sha256}] of each file: the contents identify a corpus, the paths only name it in messages."""
    return [{"path": os.path.abspath(path), "sha256": file_sha256(path)} for path in paths]


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def recorded_match(output_dir: str | Path, name: str, inputs: dict, required_file: str) -> bool:
    """Whether `output_dir` holds `required_file` of the prepared `name` made from `inputs`. False when it holds
    none, or one whose inputs were never recorded (a run killed before); SystemExit naming the differences when it
    was made from other inputs, which this command would otherwise silently reuse."""
    recorded = _read_record(output_dir).get(name)
    if recorded is None or not (Path(output_dir) / required_file).is_file():
        return False
    differences = [_difference(key, recorded.get(key), inputs.get(key))
                   for key in sorted(recorded.keys() | inputs.keys())
                   if _comparable(recorded.get(key)) != _comparable(inputs.get(key))]
    if differences:
        raise SystemExit(f"{output_dir} holds a {name} an earlier run made from other inputs "
                         f"({'; '.join(differences)}). Run the earlier command to continue that run, or use a new "
                         "--output_dir.")
    return True


def save_recorded(output_dir: str | Path, name: str, inputs: dict, save: Callable[[str], object]) -> None:
    """Write the files of `name` with `save(folder)` and record `inputs`. The record is dropped first and written
    last, and every file is moved into place whole, so a kill at any moment leaves either this or nothing recorded."""
    _update_record(output_dir, name, None)
    staging = Path(output_dir) / f".partial-{name.replace(' ', '-')}"
    shutil.rmtree(staging, ignore_errors=True)  # left by a killed run
    staging.mkdir(parents=True)
    save(str(staging))
    for path in staging.iterdir():
        os.replace(path, Path(output_dir) / path.name)
    staging.rmdir()
    _update_record(output_dir, name, inputs)


def write_atomically(path: Path, write: Callable[[Path], T]) -> T:
    """`write(partial_path)`, then rename the result to `path`: a killed process leaves no truncated `path`."""
    partial = path.with_name(path.name + ".partial")
    result = write(partial)
    os.replace(partial, path)
    return result


def _read_record(output_dir: str | Path) -> dict:
    path = Path(output_dir) / RECORD_NAME
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _update_record(output_dir: str | Path, name: str, inputs: dict | None) -> None:
    record = _read_record(output_dir)
    if inputs is None:
        record.pop(name, None)
    else:
        record[name] = inputs
    write_atomically(Path(output_dir) / RECORD_NAME, lambda path: path.write_text(json.dumps(record, indent=2)))


def _comparable(value: object) -> object:
    """Fingerprints compared by contents: two copies of a corpus at different paths are the same input."""
    if isinstance(value, list):
        return [_comparable(item) for item in value]
    if isinstance(value, dict):
        return {key: item for key, item in value.items() if key != "path"}
    return value


def _difference(key: str, then: object, now: object) -> str:
    if _shown(then) == _shown(now):
        return f"the contents of {key} {_shown(now)} changed"
    return f"{key} was {_shown(then)}, now {_shown(now)}"


def _shown(value: object) -> str:
    if isinstance(value, list) and value and all(isinstance(item, dict) and "path" in item for item in value):
        return ", ".join(item["path"] for item in value)
    return json.dumps(value)
