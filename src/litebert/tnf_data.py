"""TNF, taking notes on the fly (Wu et al., ICLR 2021), data side: the rare words TNF keeps notes for, and where
they occur in a batch.

1. `count_words` counts words over a documents dataset, and `build_rare_word_vocabulary` keeps the rare ones as a
   `RareWordVocabulary` (saved as `RARE_WORDS_FILE` next to the tokenizer; word i owns note i).
2. `RareWordFinder` marks every whole-word occurrence of a rare word in a batch of token ids: what
   `DataCollatorForNgramMLM(rare_words=...)` adds to a batch as "tnf_occurrences".

The model side (the note dictionary) lives in `litebert.modeling_tnf`.

Example:
    >>> rare_words = build_rare_word_vocabulary(count_words(documents, tokenizer), tokenizer, min_count=10)
    >>> rare_words.save("my-tokenizer")
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from transformers import PreTrainedTokenizerBase

if TYPE_CHECKING:
    from datasets import Dataset, IterableDataset

RARE_WORDS_FILE = "rare_words.json"


def tokenizer_words(tokenizer: PreTrainedTokenizerBase, text: str) -> list[str]:
    """The words of `text` as the tokenizer itself splits them (its normalizer, then its pre-tokenizer), so that a
    word's pieces are exactly what the tokenizer produces for it in running text."""
    backend = tokenizer.backend_tokenizer
    if backend.normalizer is not None:
        text = backend.normalizer.normalize_str(text)
    if backend.pre_tokenizer is None:
        return text.split()
    return [word for word, _ in backend.pre_tokenizer.pre_tokenize_str(text)]


def count_words(
    documents: Dataset | IterableDataset, tokenizer: PreTrainedTokenizerBase, num_proc: int | None = None
) -> Counter[str]:
    """Word frequencies over a documents dataset (column "lines", see `documents.load_documents`); batched
    `datasets.map` with `num_proc` processes, or streamed when `documents` is an `IterableDataset`."""

    def batch_counts(batch: dict[str, list]) -> dict[str, list[list[str]] | list[list[int]]]:
        lines = (line for document in batch["lines"] for line in document)
        counts = Counter(word for line in lines for word in tokenizer_words(tokenizer, line))
        return {"word": [list(counts)], "count": [list(counts.values())]}

    map_kwargs = {"batched": True, "batch_size": 256, "remove_columns": ["lines"]}
    if num_proc is not None and hasattr(documents, "__len__"):
        map_kwargs["num_proc"] = num_proc
        map_kwargs["desc"] = "Counting words"
    totals: Counter[str] = Counter()
    for row in documents.map(batch_counts, **map_kwargs):
        totals.update(dict(zip(row["word"], row["count"])))
    return totals


@dataclass
class RareWordVocabulary:
    """The rare words TNF keeps notes for: word i has note i, and `token_ids[i]` are its pieces."""

    words: list[str]
    counts: list[int]
    token_ids: list[list[int]]

    def __len__(self) -> int:
        return len(self.words)

    def save(self, folder: str | os.PathLike) -> str:
        path = os.path.join(folder, RARE_WORDS_FILE)
        entries = [{"word": w, "count": c, "token_ids": t} for w, c, t in zip(self.words, self.counts, self.token_ids)]
        with open(path, "w", encoding="utf-8") as file:
            json.dump(entries, file, ensure_ascii=False, indent=0)
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike) -> RareWordVocabulary:
        path = os.path.join(folder, RARE_WORDS_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No rare-word vocabulary at {path}: build one with build_rare_word_vocabulary.")
        with open(path, encoding="utf-8") as file:
            entries = json.load(file)
        for index, entry in enumerate(entries):
            if set(entry) != {"word", "count", "token_ids"} or not entry["token_ids"]:
                raise ValueError(f"{path}: entry {index} is malformed: {entry!r}")
        return cls([e["word"] for e in entries], [e["count"] for e in entries], [e["token_ids"] for e in entries])


def build_rare_word_vocabulary(
    word_counts: Counter[str],
    tokenizer: PreTrainedTokenizerBase,
    min_count: int = 10,
    max_count: int = 100,
    top_n: int | None = None,
) -> RareWordVocabulary:
    """Select rare words from corpus counts and map each to its pieces.

    Count bounds: words seen between `min_count` and `max_count` times (inclusive). The TNF paper's 16 GB corpus used
    roughly 100 to 500; a corpus of a few MB has far fewer repetitions, hence the lower defaults. With `top_n`, the
    `top_n` rarest words seen at least `min_count` times instead (`max_count` ignored). Only words with a letter
    count (numbers and punctuation are left out), and words that are a single special or unknown piece are skipped:
    a note for them would be a note for every unknown word.
    """
    if min_count < 1:
        raise ValueError(f"min_count={min_count} must be >= 1")
    if top_n is None and max_count < min_count:
        raise ValueError(f"max_count={max_count} must be >= min_count={min_count}")
    candidates = [
        (count, word)
        for word, count in word_counts.items()
        if count >= min_count and any(character.isalpha() for character in word)
    ]
    if top_n is None:
        candidates = [(count, word) for count, word in candidates if count <= max_count]
    candidates.sort()
    if top_n is not None:
        candidates = candidates[:top_n]
    special_ids = set(tokenizer.all_special_ids)
    model = tokenizer.backend_tokenizer.model
    words, counts, token_ids = [], [], []
    for count, word in candidates:
        pieces = [token.id for token in model.tokenize(word)]
        if pieces and not (len(pieces) == 1 and pieces[0] in special_ids):
            words.append(word)
            counts.append(count)
            token_ids.append(pieces)
    if not words:
        raise ValueError(
            f"No rare words: no word was seen between {min_count} and {max_count} times; adjust the bounds."
        )
    return RareWordVocabulary(words, counts, token_ids)


class RareWordFinder:
    """Finds whole-word occurrences of a `RareWordVocabulary`'s words in batches of token ids.

    Each sequence is cut into words (a word starts at every piece that does not continue the previous one, and at
    and after special tokens); a word is an occurrence when its pieces are exactly a rare word's pieces.
    `continues_word` is the tokenizer's `tokenization.continuation_flags`.
    """

    def __init__(self, vocabulary: RareWordVocabulary, continues_word: np.ndarray, special_ids: np.ndarray):
        self.word_ids = {tuple(pieces): word_id for word_id, pieces in enumerate(vocabulary.token_ids)}
        self.continues_word = continues_word.copy()
        self.is_special = np.zeros(len(continues_word), dtype=bool)
        self.is_special[special_ids] = True

    def find(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """`(num_occurrences, 4)` rows (batch_index, start, end inclusive, word_id)."""
        starts_word = ~self.continues_word[input_ids] | self.is_special[input_ids]
        starts_word[:, 1:] |= self.is_special[input_ids[:, :-1]]
        starts_word[:, 0] = True
        found = []
        for row, (ids, starts, length) in enumerate(zip(input_ids, starts_word, attention_mask.sum(1))):
            boundaries = np.r_[np.flatnonzero(starts[:length]), length].tolist()
            ids = ids.tolist()
            for begin, end in zip(boundaries[:-1], boundaries[1:]):
                word_id = self.word_ids.get(tuple(ids[begin:end]))
                if word_id is not None:
                    found.append((row, begin, end - 1, word_id))
        return np.array(found, dtype=np.int64).reshape(-1, 4)
