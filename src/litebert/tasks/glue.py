"""GLUE: the nine task definitions, a reader for the original TSV files, loaders for CSV/JSON
files and for the Hub copy, the official metrics, and the test-set submission writer.

Every loader gives rows with the same four keys, whatever the source:

    {"sentence1": str, "sentence2": str or None, "label": int, float or None, "idx": int}

`label` indexes `GlueTask.label_names`, which follow the Hub copy `nyu-mll/glue`, so TSV files
and the Hub give the same ids. STS-B labels are float scores; unlabelled test rows have None.

    >>> rows = read_glue_tsv("glue_data/RTE/dev.tsv", "rte")
    >>> rows[0]["label"], GLUE_TASKS["rte"].label_names[rows[0]["label"]]
    (1, 'not_entailment')
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import datasets
import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import rankdata

from .io import DataFormatError

# A label or index as a file or a `datasets` table holds it, before it is checked.
_CellValue = str | int | float | np.integer | None


class GlueRow(TypedDict):
    """One example, whatever the source: see the module docstring."""

    sentence1: str
    sentence2: str | None
    label: int | float | None
    idx: int


@dataclass(frozen=True)
class GlueTask:
    """How one GLUE task is laid out on disk and scored."""

    name: str
    text_columns: tuple[str, ...]  # text columns in the Hub copy and in CSV/JSON files
    tsv_text_columns: tuple[str, ...]  # the same columns as named in the original TSV header
    tsv_label_column: str
    tsv_labels: tuple[str, ...] | None  # labels as the TSV files write them, in id order; None: regression
    label_names: tuple[str, ...] | None  # the Hub's class names, in the same id order
    metrics: tuple[str, ...]
    split_files: dict[str, str]  # split name -> file name in the original GLUE task folder
    submission_files: dict[str, str]  # test split -> file name the GLUE server expects
    headerless_columns: tuple[str, ...] = ()  # column names for files without a header row (CoLA)

    @property
    def is_regression(self) -> bool:
        return self.tsv_labels is None

    @property
    def num_labels(self) -> int:
        return 1 if self.is_regression else len(self.tsv_labels)


_BINARY = ("0", "1")
STSB_SCORE_RANGE = (0.0, 5.0)  # gold similarity scores; predictions are clipped to it for the GLUE server
_TWO_WAY_NLI = ("entailment", "not_entailment")
_SPLIT_FILES = {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}

GLUE_TASKS = {
    task.name: task
    for task in [
        GlueTask(
            name="cola",
            text_columns=("sentence",),
            tsv_text_columns=("sentence",),
            tsv_label_column="label",
            tsv_labels=_BINARY,
            label_names=("unacceptable", "acceptable"),
            metrics=("matthews_correlation",),
            split_files=_SPLIT_FILES,
            submission_files={"test": "CoLA.tsv"},
            # train/dev have no header; test.tsv has one (index, sentence)
            headerless_columns=("source", "label", "original_judgement", "sentence"),
        ),
        GlueTask(
            name="sst2",
            text_columns=("sentence",),
            tsv_text_columns=("sentence",),
            tsv_label_column="label",
            tsv_labels=_BINARY,
            label_names=("negative", "positive"),
            metrics=("accuracy",),
            split_files=_SPLIT_FILES,
            submission_files={"test": "SST-2.tsv"},
        ),
        GlueTask(
            name="mrpc",
            text_columns=("sentence1", "sentence2"),
            tsv_text_columns=("#1 String", "#2 String"),
            tsv_label_column="Quality",
            tsv_labels=_BINARY,
            label_names=("not_equivalent", "equivalent"),
            metrics=("f1", "accuracy"),
            split_files=_SPLIT_FILES,
            submission_files={"test": "MRPC.tsv"},
        ),
        GlueTask(
            name="stsb",
            text_columns=("sentence1", "sentence2"),
            tsv_text_columns=("sentence1", "sentence2"),
            tsv_label_column="score",
            tsv_labels=None,
            label_names=None,
            metrics=("pearson", "spearmanr"),
            split_files=_SPLIT_FILES,
            submission_files={"test": "STS-B.tsv"},
        ),
        GlueTask(
            name="qqp",
            text_columns=("question1", "question2"),
            tsv_text_columns=("question1", "question2"),
            tsv_label_column="is_duplicate",
            tsv_labels=_BINARY,
            label_names=("not_duplicate", "duplicate"),
            metrics=("f1", "accuracy"),
            split_files=_SPLIT_FILES,
            submission_files={"test": "QQP.tsv"},
        ),
        GlueTask(
            name="mnli",
            text_columns=("premise", "hypothesis"),
            tsv_text_columns=("sentence1", "sentence2"),
            tsv_label_column="gold_label",
            tsv_labels=("entailment", "neutral", "contradiction"),
            label_names=("entailment", "neutral", "contradiction"),
            metrics=("accuracy",),
            split_files={
                "train": "train.tsv",
                "validation_matched": "dev_matched.tsv",
                "validation_mismatched": "dev_mismatched.tsv",
                "test_matched": "test_matched.tsv",
                "test_mismatched": "test_mismatched.tsv",
            },
            # the diagnostic set AX is predicted with the MNLI model and uses its labels
            submission_files={"test_matched": "MNLI-m.tsv", "test_mismatched": "MNLI-mm.tsv", "ax": "AX.tsv"},
        ),
        GlueTask(
            name="qnli",
            text_columns=("question", "sentence"),
            tsv_text_columns=("question", "sentence"),
            tsv_label_column="label",
            tsv_labels=_TWO_WAY_NLI,
            label_names=_TWO_WAY_NLI,
            metrics=("accuracy",),
            split_files=_SPLIT_FILES,
            submission_files={"test": "QNLI.tsv"},
        ),
        GlueTask(
            name="rte",
            text_columns=("sentence1", "sentence2"),
            tsv_text_columns=("sentence1", "sentence2"),
            tsv_label_column="label",
            tsv_labels=_TWO_WAY_NLI,
            label_names=_TWO_WAY_NLI,
            metrics=("accuracy",),
            split_files=_SPLIT_FILES,
            submission_files={"test": "RTE.tsv"},
        ),
        GlueTask(
            name="wnli",
            text_columns=("sentence1", "sentence2"),
            tsv_text_columns=("sentence1", "sentence2"),
            tsv_label_column="label",
            tsv_labels=_BINARY,
            label_names=("not_entailment", "entailment"),
            metrics=("accuracy",),
            split_files=_SPLIT_FILES,
            submission_files={"test": "WNLI.tsv"},
        ),
    ]
}


def get_glue_task(task: str | GlueTask) -> GlueTask:
    """Look a task up by name, forgiving case, '-' and '_': 'SST-2', 'sts_b' and 'MNLI' all work.

    >>> get_glue_task("STS-B").metrics
    ('pearson', 'spearmanr')
    """
    if isinstance(task, GlueTask):
        return task
    key = task.lower().replace("-", "").replace("_", "")
    if key not in GLUE_TASKS:
        raise ValueError(f"unknown GLUE task {task!r}; expected one of {', '.join(GLUE_TASKS)}")
    return GLUE_TASKS[key]


# ----------------------------------------------------------------------------- reading


def read_glue_tsv(path: str | os.PathLike[str], task: str | GlueTask, labelled: bool = False) -> list[GlueRow]:
    """Read one file in the original GLUE TSV layout into a list of row dicts.

    Lines are split on tabs only: quotes are plain text (GLUE files hold unbalanced quotes, so
    quote processing would merge lines). The header row is found by its column names; CoLA's
    train/dev files have none. A UTF-8 byte order mark (MRPC) is skipped, blank lines are
    ignored, and a file without the label column (a test file) gives label None, unless
    `labelled` (a train or validation file), which requires the column and a label on every row.
    Rows without an `index`/`id` column get their 0-based position as idx. A malformed row raises
    DataFormatError naming the file and the 1-based line number.

    >>> read_glue_tsv("glue_data/CoLA/dev.tsv", "cola")[0]
    {'sentence1': 'The sailors rode the breeze clear of the rocks.', 'sentence2': None, 'label': 1, 'idx': 0}
    """
    spec = get_glue_task(task)
    with open(path, encoding="utf-8-sig", newline="\n") as f:
        lines = [(number, line.rstrip("\r\n")) for number, line in enumerate(f, start=1)]
    lines = [(number, line) for number, line in lines if line]
    if not lines:
        return []

    first_fields = lines[0][1].split("\t")
    if all(column in first_fields for column in spec.tsv_text_columns):
        columns, body = first_fields, lines[1:]
    elif spec.headerless_columns:
        columns, body = list(spec.headerless_columns), lines
    else:
        raise DataFormatError(
            path, f"line {lines[0][0]}",
            f"expected a header row with the columns {', '.join(spec.tsv_text_columns)} "
            f"for GLUE {spec.name}; found {first_fields}",
        )

    position = {name: i for i, name in enumerate(columns)}
    text_positions = [position[name] for name in spec.tsv_text_columns]
    label_position = position.get(spec.tsv_label_column)
    if labelled and label_position is None:
        raise DataFormatError(path, f"line {lines[0][0]}", _missing_label_column(spec.tsv_label_column, columns))
    index_position = position.get("index", position.get("id"))

    rows: list[GlueRow] = []
    for row_number, (line_number, line) in enumerate(body):
        where = f"line {line_number}"
        fields = line.split("\t")
        if len(fields) != len(columns):
            raise DataFormatError(
                path, where,
                f"expected {len(columns)} tab-separated columns ({', '.join(columns)}), found {len(fields)}",
            )
        texts = [fields[i] for i in text_positions]
        rows.append({
            "sentence1": texts[0],
            "sentence2": texts[1] if len(texts) > 1 else None,
            "label": None if label_position is None else _label_id(spec, fields[label_position], path, where,
                                                                   labelled),
            "idx": row_number if index_position is None else _index(fields[index_position], path, where),
        })
    return rows


def _missing_label_column(column: str, found: Iterable[str]) -> str:
    return (f"no label column {column!r} (found {', '.join(found)}); training and validation data need "
            "labels, only test files may leave them out")


def _label_id(
    spec: GlueTask, value: _CellValue, path: str | os.PathLike[str], where: str, labelled: bool = False
) -> int | float | None:
    """Turn a label as found in a file into the row's label. Accepted: the TSV spelling ('1',
    'entailment'), the Hub's class ids and names, a score for STS-B; -1 (the Hub's mark for
    unlabelled test rows) and None give None, an error when the row must be `labelled`."""
    label = _parse_label(spec, value, path, where)
    if label is None and labelled:
        raise DataFormatError(path, where, f"label {value!r} marks an unlabelled (test) row; training and "
                              "validation data need a label on every row")
    return label


def _parse_label(spec: GlueTask, value: _CellValue, path: str | os.PathLike[str], where: str) -> int | float | None:
    if value is None:
        return None
    if spec.is_regression:
        try:
            score = float(value)
        except (TypeError, ValueError):
            score = math.nan
        if not math.isfinite(score):
            raise DataFormatError(path, where, f"expected a numeric similarity score, found {value!r}")
        if score == -1:
            return None
        low, high = STSB_SCORE_RANGE
        if not low <= score <= high:
            raise DataFormatError(path, where, f"similarity score {value!r} is outside {low:g}-{high:g}, the scale of "
                                  "STS-B (-1 marks an unlabelled test row)")
        return score
    if isinstance(value, str):
        for spelling in (spec.tsv_labels, spec.label_names):
            if value in spelling:
                return spelling.index(value)
    elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if value == -1:
            return None
        if 0 <= value < spec.num_labels:
            return int(value)
    allowed = ", ".join(dict.fromkeys(spec.tsv_labels + spec.label_names))
    raise DataFormatError(
        path, where, f"unknown label {value!r} for GLUE {spec.name}; expected one of {allowed} "
        f"(or a class id 0..{spec.num_labels - 1})",
    )


def _index(value: _CellValue, path: str | os.PathLike[str], where: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DataFormatError(path, where, f"expected an integer index, found {value!r}") from None


def _rows_from_records(
    spec: GlueTask, records: datasets.Dataset, source: str | os.PathLike[str], labelled: bool = False
) -> list[GlueRow]:
    """Rows from a table with Hub-style columns (a CSV/JSON file or the Hub copy). The text
    columns may use the Hub names (e.g. premise/hypothesis) or sentence1/sentence2. A `labelled`
    table (training or validation data) needs a label column and a label on every row."""
    names = list(records.column_names)
    text_columns = _find_text_columns(spec, names, source)
    if labelled and "label" not in names:
        raise DataFormatError(source, "", _missing_label_column("label", names))
    rows: list[GlueRow] = []
    for i, record in enumerate(records):
        where = f"row {i + 1}"
        texts = [record[column] for column in text_columns]
        for column, text in zip(text_columns, texts):
            if not isinstance(text, str):
                raise DataFormatError(source, where, f"expected text in column {column!r}, found {text!r}")
        rows.append({
            "sentence1": texts[0],
            "sentence2": texts[1] if len(texts) > 1 else None,
            "label": _label_id(spec, record["label"], source, where, labelled) if "label" in names else None,
            "idx": _index(record["idx"], source, where) if "idx" in names else i,
        })
    return rows


def _find_text_columns(spec: GlueTask, names: Sequence[str], source: str | os.PathLike[str]) -> tuple[str, ...]:
    generic = ("sentence1", "sentence2")[: len(spec.text_columns)]
    for candidate in (spec.text_columns, generic):
        if all(column in names for column in candidate):
            return candidate
    missing = [column for column in spec.text_columns if column not in names]
    raise DataFormatError(
        source, "",
        f"missing column(s) {', '.join(missing)} for GLUE {spec.name} (expected "
        f"{' + '.join(spec.text_columns)} or {' + '.join(generic)}); found {', '.join(names)}",
    )


def _read_rows(spec: GlueTask, path: str | os.PathLike[str], cache_dir: str | None, split: str) -> list[GlueRow]:
    """Rows of one local file for `split`, read by its extension: .tsv, .csv, .json or .jsonl.
    Only test splits may come without labels; no split may be empty."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GLUE {spec.name} file not found: {path}")
    if _is_blank(path):
        raise DataFormatError(path, "", f"the file is empty; expected the GLUE {spec.name} {split} split")
    labelled = not split.startswith("test")
    suffix = path.suffix.lower()
    if suffix == ".tsv":
        rows = read_glue_tsv(path, spec, labelled)
    elif suffix in _TABLE_BUILDERS:
        rows = _rows_from_records(spec, _load_table(path, _TABLE_BUILDERS[suffix], cache_dir), path, labelled)
    else:
        raise ValueError(f"{path}: unsupported extension {suffix!r}; use .tsv, .csv, .json or .jsonl")
    if not rows:
        raise DataFormatError(path, "", f"no data rows, only a header; expected the GLUE {spec.name} {split} split")
    return rows


_TABLE_BUILDERS = {".csv": "csv", ".json": "json", ".jsonl": "json"}


def _load_table(path: Path, builder: str, cache_dir: str | None) -> datasets.Dataset:
    try:
        return datasets.load_dataset(builder, data_files=str(path), split="train", cache_dir=cache_dir)
    except ValueError as err:  # e.g. a CSV file holding only its header: "Instruction "train" corresponds to no data"
        raise DataFormatError(path, "", f"cannot be read as {builder.upper()} rows: {err}") from err


def _is_blank(path: Path) -> bool:
    with open(path, encoding="utf-8", errors="replace") as f:
        return all(not line.strip() for line in f)


def _as_dataset(spec: GlueTask, rows: list[GlueRow]) -> datasets.Dataset:
    features = datasets.Features({
        "sentence1": datasets.Value("string"),
        "sentence2": datasets.Value("string"),
        "label": datasets.Value("float32" if spec.is_regression else "int64"),
        "idx": datasets.Value("int64"),
    })
    return datasets.Dataset.from_list(rows, features=features)


def load_glue_split(
    task: str | GlueTask,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    train_file: str | os.PathLike[str] | None = None,
    validation_file: str | os.PathLike[str] | None = None,
    test_file: str | os.PathLike[str] | None = None,
    dataset_name: str = "nyu-mll/glue",
    cache_dir: str | None = None,
) -> datasets.DatasetDict:
    """Load a GLUE task as a `datasets.DatasetDict` of rows with the canonical four columns.

    The first source given wins:
    - train_file / validation_file / test_file: local files, read by extension (.tsv in the
      original GLUE layout; .csv/.json/.jsonl with the Hub's column names or
      sentence1/sentence2, plus optional label and idx columns);
    - data_dir: an original GLUE task folder such as glue_data/MNLI, read through the task's
      split_files (so MNLI gives validation_matched and validation_mismatched);
    - otherwise the Hub dataset `dataset_name` with the task as config (needs the network or a
      filled cache; offline it fails with a message saying what to pass instead).

    >>> load_glue_split("rte", data_dir="glue_data/RTE")["validation"].num_rows
    277
    """
    spec = get_glue_task(task)
    files = {split: path for split, path in
             (("train", train_file), ("validation", validation_file), ("test", test_file)) if path}
    if not files and data_dir is not None:
        files = {split: Path(data_dir) / name for split, name in spec.split_files.items()
                 if (Path(data_dir) / name).is_file()}
        if not files:
            raise FileNotFoundError(
                f"no GLUE {spec.name} files in {data_dir}; expected some of {', '.join(spec.split_files.values())}"
            )
    if files:
        return datasets.DatasetDict(
            {split: _as_dataset(spec, _read_rows(spec, path, cache_dir, split)) for split, path in files.items()}
        )
    return _load_from_hub(spec, dataset_name, cache_dir)


def _load_from_hub(spec: GlueTask, dataset_name: str, cache_dir: str | None) -> datasets.DatasetDict:
    try:
        hub = datasets.load_dataset(dataset_name, spec.name, cache_dir=cache_dir)
    except OSError as err:  # no network, offline mode, or no such dataset: all OSError subclasses
        raise RuntimeError(
            f"could not load GLUE {spec.name} from the Hub dataset {dataset_name!r}: {err}. "
            f"Without network access pass data_dir= (an original GLUE task folder) or "
            f"train_file=/validation_file=/test_file= (.tsv, .csv, .json or .jsonl files)."
        ) from err
    return datasets.DatasetDict({
        split: _as_dataset(spec, _rows_from_records(spec, table, f"{dataset_name}/{spec.name}[{split}]",
                                                    labelled=not split.startswith("test")))
        for split, table in hub.items()
    })


# ----------------------------------------------------------------------------- metrics


def _accuracy(predictions: np.ndarray, references: np.ndarray) -> float:
    return float(np.mean(predictions == references))


def _binary_f1(predictions: np.ndarray, references: np.ndarray) -> float:
    """F1 of the positive class 1 (duplicate / equivalent), as GLUE reports for MRPC and QQP."""
    true_positives = np.sum((predictions == 1) & (references == 1))
    false_positives = np.sum((predictions == 1) & (references != 1))
    false_negatives = np.sum((predictions != 1) & (references == 1))
    if true_positives == 0:
        return 0.0
    return float(2 * true_positives / (2 * true_positives + false_positives + false_negatives))


def _matthews_correlation(predictions: np.ndarray, references: np.ndarray) -> float:
    """Matthews correlation from class counts: (c*s - p.t) / sqrt((s^2 - p.p)(s^2 - t.t)), with
    c correct, s total, p and t the predicted and true count per class; 0 when undefined."""
    classes = np.union1d(predictions, references)
    predicted = np.array([np.sum(predictions == c) for c in classes], dtype=float)
    true = np.array([np.sum(references == c) for c in classes], dtype=float)
    correct, total = float(np.sum(predictions == references)), float(len(references))
    denominator = math.sqrt((total**2 - predicted @ predicted) * (total**2 - true @ true))
    return float((correct * total - predicted @ true) / denominator) if denominator else 0.0


def _pearson(predictions: np.ndarray, references: np.ndarray) -> float:
    return float(np.corrcoef(predictions.astype(float), references.astype(float))[0, 1])


def _spearman(predictions: np.ndarray, references: np.ndarray) -> float:
    # Spearman's rho is Pearson's r on ranks; ties share their average rank
    return _pearson(rankdata(predictions), rankdata(references))


_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": _accuracy,
    "f1": _binary_f1,
    "matthews_correlation": _matthews_correlation,
    "pearson": _pearson,
    "spearmanr": _spearman,
}


def _as_predictions(spec: GlueTask, predictions: ArrayLike) -> np.ndarray:
    """Class ids or scores from what a model gives: ids/scores as they are, a [n, num_labels]
    logits array through argmax, a [n, 1] regression output through its only column."""
    predictions = np.asarray(predictions)
    if predictions.ndim == 2:
        predictions = predictions[:, 0] if spec.is_regression else predictions.argmax(axis=1)
    return predictions


def glue_metrics(task: str | GlueTask, predictions: ArrayLike, references: ArrayLike) -> dict[str, float]:
    """The task's official GLUE metrics on a 0-1 scale, as a dict named as in `GlueTask.metrics`:
    CoLA matthews_correlation; MRPC and QQP f1 and accuracy; STS-B pearson and spearmanr;
    the others accuracy. Predictions may be ids/scores or raw model outputs (logits).

    >>> glue_metrics("mrpc", [1, 0, 1, 1], [1, 0, 0, 1])
    {'f1': 0.8, 'accuracy': 0.75}
    """
    spec = get_glue_task(task)
    predictions, references = _as_predictions(spec, predictions), np.asarray(references)
    if len(predictions) != len(references) or len(references) == 0:
        raise ValueError(f"need as many predictions as references (and at least one); "
                         f"got {len(predictions)} and {len(references)}")
    return {name: _METRICS[name](predictions, references) for name in spec.metrics}


# ----------------------------------------------------------------------------- submission


def write_glue_predictions(
    task: str | GlueTask, predictions: ArrayLike, path: str | os.PathLike[str], indices: Iterable[int] | None = None
) -> str | os.PathLike[str]:
    """Write test-set predictions in the format the GLUE server scores, and return the path.

    One TSV per test set, named as in `GlueTask.submission_files` (CoLA.tsv, MNLI-m.tsv,
    MNLI-mm.tsv, AX.tsv, ...), with the header `index<TAB>prediction` and one row per test
    example. Each prediction is written the way the task's original TSV files write labels:
    `entailment`/`neutral`/`contradiction` for MNLI (and AX, which an MNLI model predicts),
    `entailment`/`not_entailment` for QNLI and RTE, and `0`/`1` for CoLA, SST-2, MRPC, QQP and
    WNLI. STS-B scores are clipped to the 0-5 scale of the gold scores and written with three
    decimals. transformers' run_glue.py instead writes the Hub class names (`acceptable`,
    `equivalent`, ...) for every task and unclipped scores; we follow the original files.

    `indices` are the test rows' idx values (default 0, 1, 2, ...).

    >>> write_glue_predictions("rte", [0, 1], "RTE.tsv")  # rows: 0<TAB>entailment, 1<TAB>not_entailment
    'RTE.tsv'
    """
    spec = get_glue_task(task)
    predictions = _as_predictions(spec, predictions)
    indices = list(range(len(predictions))) if indices is None else list(indices)
    if len(indices) != len(predictions):
        raise ValueError(f"got {len(predictions)} predictions but {len(indices)} indices")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("index\tprediction\n")
        for index, prediction in zip(indices, predictions):
            if spec.is_regression:
                value = f"{min(max(float(prediction), STSB_SCORE_RANGE[0]), STSB_SCORE_RANGE[1]):.3f}"
            else:
                value = spec.tsv_labels[int(prediction)]
            f.write(f"{index}\t{value}\n")
    return path
