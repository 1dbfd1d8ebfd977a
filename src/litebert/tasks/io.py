"""Small helpers shared by the task readers: an error that says where a file is wrong,
JSON loading with such errors, and uniform column access to batches, row lists and datasets."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from os import PathLike
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import TypeAlias

    from datasets import Dataset

    # what as_columns reads: a dict of columns (a batched map's batch), a Dataset, or row dicts
    ColumnData: TypeAlias = Mapping[str, Iterable[Any]] | Dataset | Iterable[Mapping[str, Any]]


class DataFormatError(ValueError):
    """A data file does not have the expected layout. The message starts with the file and
    the place inside it (a line number or a JSON path), then says what was expected.

    >>> str(DataFormatError("dev.tsv", "line 7", "expected 4 tab-separated columns, found 3"))
    'dev.tsv, line 7: expected 4 tab-separated columns, found 3'
    """

    def __init__(self, path: str | PathLike[str], where: str, problem: str) -> None:
        self.path, self.where, self.problem = str(path), where, problem
        place = f"{path}, {where}" if where else f"{path}"
        super().__init__(f"{place}: {problem}")

    def __reduce__(self) -> tuple[type[DataFormatError], tuple[str, str, str]]:
        # keeps the error picklable, so it survives datasets' multiprocessing map
        return (type(self), (self.path, self.where, self.problem))


def read_json_file(path: str | PathLike[str]) -> Any:  # any JSON value
    """Parse one JSON file; a syntax error becomes a DataFormatError naming the file and line."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise DataFormatError(path, f"line {err.lineno}", f"invalid JSON ({err.msg})") from err
    except UnicodeDecodeError as err:
        raise DataFormatError(path, f"byte {err.start}", "file is not UTF-8 text") from err


def as_columns(data: ColumnData, keys: Sequence[str]) -> dict[str, list[Any]]:
    """Return {key: list of values} for a dict of lists (such as the batch a batched
    `Dataset.map` passes), a `datasets.Dataset`, or a plain list of row dicts.

    >>> as_columns([{"a": 1, "b": 2}, {"a": 3, "b": 4}], ["a"])
    {'a': [1, 3]}
    """
    if isinstance(data, Mapping) or hasattr(data, "column_names"):
        present = set(data.keys()) if isinstance(data, Mapping) else set(data.column_names)
        missing = [k for k in keys if k not in present]
        if missing:
            raise KeyError(f"missing column(s) {missing}; found {sorted(present)}")
        return {k: list(data[k]) for k in keys}
    rows = list(data)
    for i, row in enumerate(rows):
        missing = [k for k in keys if k not in row]
        if missing:
            raise KeyError(f"row {i} has no key(s) {missing}; found {sorted(row)}")
    return {k: [row[k] for row in rows] for k in keys}
