"""RACE: reading the original distribution, building the four (article, question + option)
inputs of each question for a multiple-choice model, and accuracy overall and per level.

The original layout is {root}/{split}/{middle,high}/<n>.txt, each file one JSON passage with
article, questions, options (4 per question), answers (letters A-D) and id. Every question
becomes one example:

    {"example_id": "high1234-0", "level": "high", "article": str, "question": str,
     "options": [4 str], "label": 0..3}

    >>> dev = read_race("RACE", "dev")
    >>> len(dev), sum(ex["level"] == "middle" for ex in dev)
    (4887, 1436)

The Hub copy (`ehovy/race`, configs all/middle/high, one row per question) gives the same examples through
`load_race_from_hub`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import numpy as np

from .io import DataFormatError, as_columns, read_json_file

if TYPE_CHECKING:
    import datasets
    from numpy.typing import ArrayLike
    from transformers import PreTrainedTokenizerBase

    from .io import ColumnData

LEVELS = ("middle", "high")
ANSWER_LETTERS = ("A", "B", "C", "D")
NUM_CHOICES = len(ANSWER_LETTERS)


class RaceExample(TypedDict):
    """One question, as read_race and load_race_from_hub give it."""

    example_id: str  # the passage id and the question's index in it, e.g. "high1234-0"
    level: str  # "middle" or "high"
    article: str
    question: str
    options: list[str]  # NUM_CHOICES of them
    label: int  # index of the right option


def read_race(root: str | PathLike[str], split: str, levels: Sequence[str] = LEVELS) -> list[RaceExample]:
    """All questions of one split, level by level, passages in numeric file-name order."""
    unknown = [level for level in levels if level not in LEVELS]
    if unknown:
        raise ValueError(f"unknown RACE level(s) {unknown}; expected some of {', '.join(LEVELS)}")
    folders = [Path(root) / split / level for level in levels]
    missing = [str(folder) for folder in folders if not folder.is_dir()]
    if missing:
        raise FileNotFoundError(
            f"RACE folder(s) not found: {', '.join(missing)}; expected the original layout "
            f"{Path(root)}/{split}/{{{','.join(levels)}}}/*.txt"
        )
    examples = []
    for level, folder in zip(levels, folders):
        files = sorted(folder.glob("*.txt"), key=_file_order)
        if not files:
            raise FileNotFoundError(f"no RACE passages (*.txt) in {folder}")
        for path in files:
            examples += _passage_examples(path, level)
    return examples


def _file_order(path: Path) -> tuple[int, int, str]:
    # "2.txt" before "10.txt"; names that are not numbers come last, alphabetically
    return (0, int(path.stem), "") if path.stem.isdigit() else (1, 0, path.stem)


def _passage_examples(path: Path, level: str) -> list[RaceExample]:
    passage = read_json_file(path)
    if not isinstance(passage, dict):
        raise DataFormatError(path, "", f"expected one JSON object, found {type(passage).__name__}")
    missing = [key for key in ("article", "questions", "options", "answers", "id") if key not in passage]
    if missing:
        raise DataFormatError(path, "", f"missing key(s) {', '.join(missing)}")
    questions, options, answers = passage["questions"], passage["options"], passage["answers"]
    if not len(questions) == len(options) == len(answers):
        raise DataFormatError(path, "", f"expected one options list and one answer per question; found "
                              f"{len(questions)} questions, {len(options)} options lists, {len(answers)} answers")

    passage_id = str(passage["id"]).removesuffix(".txt")
    examples = []
    for i, (question, choices, answer) in enumerate(zip(questions, options, answers)):
        where = f"question {i}"
        if not isinstance(choices, list) or len(choices) != NUM_CHOICES:
            found = len(choices) if isinstance(choices, list) else repr(choices)
            raise DataFormatError(path, where, f"expected {NUM_CHOICES} options, found {found}")
        if answer not in ANSWER_LETTERS:
            raise DataFormatError(path, where, f"expected an answer letter A-D, found {answer!r}")
        examples.append({
            "example_id": f"{passage_id}-{i}",
            "level": level,
            "article": passage["article"],
            "question": question,
            "options": list(choices),
            "label": ANSWER_LETTERS.index(answer),
        })
    return examples


HUB_SPLITS = {"train": "train", "dev": "validation", "test": "test"}


def load_race_from_hub(dataset_name: str, split: str, levels: Sequence[str] = LEVELS,
                       cache_dir: str | None = None) -> list[RaceExample]:
    """All questions of one split ("train", "dev" or "test") of a Hub copy of RACE laid out as `ehovy/race`:
    configs "all", "middle", "high"; columns example_id (the passage file, e.g. "high1234.txt"), article,
    question, options, answer. Examples come out as from `read_race`, level by level."""
    import datasets

    unknown = [level for level in levels if level not in LEVELS]
    if unknown or split not in HUB_SPLITS:
        raise ValueError(f"unknown RACE level(s) {unknown} or split {split!r}; expected levels among "
                         f"{', '.join(LEVELS)} and a split among {', '.join(HUB_SPLITS)}")
    examples = []
    for level in levels:
        source = f"{dataset_name}/{level}[{HUB_SPLITS[split]}]"
        try:
            rows = datasets.load_dataset(dataset_name, level, split=HUB_SPLITS[split], cache_dir=cache_dir)
        except OSError as err:  # no network, offline mode, or no such dataset
            raise RuntimeError(f"could not load RACE {source}: {err}. Without network access pass --data_dir, "
                               "the original RACE folder.") from err
        examples += _hub_examples(rows, level, source)
    return examples


def _hub_examples(rows: datasets.Dataset, level: str, source: str) -> list[RaceExample]:
    missing = [key for key in ("example_id", "article", "question", "options", "answer")
               if key not in rows.column_names]
    if missing:
        raise DataFormatError(source, "", f"missing column(s) {', '.join(missing)}")
    examples, questions_seen = [], {}
    for index, row in enumerate(rows):
        if len(row["options"]) != NUM_CHOICES or row["answer"] not in ANSWER_LETTERS:
            raise DataFormatError(source, f"row {index}", f"expected {NUM_CHOICES} options and an answer letter "
                                  f"A-D, found {len(row['options'])} options and answer {row['answer']!r}")
        passage_id = str(row["example_id"]).removesuffix(".txt")
        number = questions_seen.get(passage_id, 0)
        questions_seen[passage_id] = number + 1
        examples.append({
            "example_id": f"{passage_id}-{number}",
            "level": level,
            "article": row["article"],
            "question": row["question"],
            "options": list(row["options"]),
            "label": ANSWER_LETTERS.index(row["answer"]),
        })
    return examples


_BLANK = re.compile(r"_+")


def build_choice_inputs(question: str, option: str) -> str:
    """The second text of one choice: a cloze question gets the option in its blank (a run of
    underscores counts as one blank), any other question is followed by the option.

    >>> build_choice_inputs("John Denver is a great  _  singer.", "American")
    'John Denver is a great  American  singer.'
    >>> build_choice_inputs("Which is right?", "Music is old.")
    'Which is right? Music is old.'
    """
    if "_" in question:
        return _BLANK.sub(lambda _: option, question)
    return f"{question} {option}"


def prepare_multiple_choice_features(
    examples: ColumnData, tokenizer: PreTrainedTokenizerBase, max_seq_length: int
) -> dict[str, list[list[list[int]]] | list[int]]:
    """Model inputs for a batched `Dataset.map` (or a dict of lists / list of example dicts).

    Each question gives NUM_CHOICES pairs (article, build_choice_inputs(question, option)) of at
    most max_seq_length tokens; only the article is truncated, so question and option always stay
    whole. Returns input_ids, attention_mask (and token_type_ids when the tokenizer makes them)
    as lists shaped [n, NUM_CHOICES, length of each pair], plus labels; padding is left to the
    collator (`transformers.DataCollatorForMultipleChoice` pads a batch to its longest pair).
    """
    columns = as_columns(examples, ["article", "question", "options", "label"])
    articles, choices = [], []
    for article, question, options in zip(columns["article"], columns["question"], columns["options"]):
        if len(options) != NUM_CHOICES:
            raise ValueError(f"expected {NUM_CHOICES} options per question, found {len(options)}: {options}")
        for option in options:
            articles.append(article)
            choices.append(build_choice_inputs(question, option))
    _check_choices_fit(tokenizer, choices, max_seq_length)

    encoded = tokenizer(articles, choices, truncation="only_first", max_length=max_seq_length)
    features = {key: [values[i:i + NUM_CHOICES] for i in range(0, len(values), NUM_CHOICES)]
                for key, values in encoded.items()}
    features["labels"] = list(columns["label"])
    return features


def _check_choices_fit(tokenizer: PreTrainedTokenizerBase, choices: Sequence[str], max_seq_length: int) -> None:
    """Article-only truncation fails when a question + option alone fills the sequence; say so."""
    room = max_seq_length - tokenizer.num_special_tokens_to_add(pair=True) - 1  # keep one article token
    lengths = [len(ids) for ids in tokenizer(choices, add_special_tokens=False)["input_ids"]]
    too_long = [i for i, length in enumerate(lengths) if length > room]
    if too_long:
        longest = max(too_long, key=lengths.__getitem__)
        raise ValueError(
            f"question + option needs {lengths[longest]} tokens but max_seq_length={max_seq_length} leaves "
            f"{room}; raise max_seq_length. Text: {choices[longest]!r}"
        )


def race_accuracy(predictions: ArrayLike, labels: ArrayLike, levels: ArrayLike) -> dict[str, float]:
    """Accuracy (0-1) overall and per level, with the number of questions behind each.
    Predictions are choice ids or [n, NUM_CHOICES] scores. A level with no questions gets nan.

    >>> race_accuracy([0, 1, 2], [0, 1, 3], ["middle", "high", "high"])["accuracy_high"]
    0.5
    """
    predictions, labels, levels = np.asarray(predictions), np.asarray(labels), np.asarray(levels)
    if predictions.ndim == 2:
        predictions = predictions.argmax(axis=1)
    if not len(predictions) == len(labels) == len(levels):
        raise ValueError(f"lengths differ: {len(predictions)} predictions, {len(labels)} labels, {len(levels)} levels")
    correct = predictions == labels
    result = {"accuracy": float(correct.mean()), "count": int(correct.size)}
    for level in LEVELS:
        in_level = levels == level
        result[f"accuracy_{level}"] = float(correct[in_level].mean()) if in_level.any() else float("nan")
        result[f"count_{level}"] = int(in_level.sum())
    return result
