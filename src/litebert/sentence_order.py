"""Sentence-order-prediction (SOP) pairs, after ALBERT's create_pretraining_data.

`build_sop_dataset` packs each document's lines (a documents dataset from `litebert.documents`) into chunks once
(`build_sop_chunks`), and draws from each chunk a `[CLS] A [SEP] B [SEP]` pair anew every epoch
(`SentenceOrderPairs`; `SentenceOrderEpochCallback` tells it the epoch). What comes next:
`litebert.masking.DataCollatorForNgramMLM` pads the pairs into batches and masks them for MLM.

Example:
    >>> train_dataset = build_sop_dataset(documents, tokenizer, max_seq_length=128)
    >>> trainer = Trainer(model, args, train_dataset=train_dataset, data_collator=collator,
    ...                   callbacks=[SentenceOrderEpochCallback(train_dataset)])
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import itertools
import math
from collections.abc import Iterator

import numpy as np
import torch
from datasets import Dataset, Features, IterableDataset, Sequence, Value
from transformers import PreTrainedTokenizerBase, TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from .documents import DOCUMENT_COLUMN
from .tokenization import check_special_tokens, continuation_flags

# A chunk: its tokens (no special tokens) and the positions inside it where a source line ends.
CHUNK_FEATURES = Features({"input_ids": Sequence(Value("int32")), "line_breaks": Sequence(Value("int32"))})
MIN_SEQ_LENGTH = 5  # [CLS] a [SEP] b [SEP]: one token per segment


def check_max_seq_length(max_seq_length: int, max_position_embeddings: int | None = None) -> None:
    """Raise ValueError unless MIN_SEQ_LENGTH <= max_seq_length <= max_position_embeddings (when given)."""
    if max_seq_length < MIN_SEQ_LENGTH:
        raise ValueError(
            f"max_seq_length={max_seq_length} is too small: [CLS] A [SEP] B [SEP] needs at least {MIN_SEQ_LENGTH}"
        )
    if max_position_embeddings is not None and max_seq_length > max_position_embeddings:
        raise ValueError(
            f"max_seq_length={max_seq_length} is larger than the model's "
            f"max_position_embeddings={max_position_embeddings}"
        )


def build_sop_dataset(
    documents_dataset: Dataset | IterableDataset,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int = 128,
    short_seq_prob: float = 0.1,
    seed: int = 42,
    num_proc: int | None = None,
    max_position_embeddings: int | None = None,
    max_examples: int | None = None,
    sentence_order: bool = True,
) -> SentenceOrderPairs | StreamedSentenceOrderPairs:
    """Sentence-order-prediction examples from a documents dataset (column "lines"), drawn anew every epoch.

    Built once, per document (`build_sop_chunks`, after ALBERT's create_pretraining_data):
    - each line is tokenized, and consecutive lines are packed into a chunk of a
      target length: max_seq_length - 3, or with probability `short_seq_prob` a
      random length from 2 up. A chunk never spans two documents;
    - unlike ALBERT, which truncates the pair and drops the overflow, a line that
      overflows the chunk is cut at the last word start that fits, and its rest
      opens the next chunk. No text is dropped, and a word is never split between
      chunks (unless a single word is longer than a chunk).
    Drawn per epoch, from (seed, epoch, the chunk's tokens) alone (`SentenceOrderPairs`):
    - the chunk is cut into A and B at a random line boundary inside it; a chunk
      within a single line (a long paragraph, or a one-line document) is cut at a
      random word start instead, so both segments are non-empty whole words;
    - with probability 0.5, A and B swap and sentence_order_label is 1 (0 = original order).
      With `sentence_order=False` (pretraining without SOP) they never swap and
      examples have no sentence_order_label.

    Each epoch thus shows every chunk with a new cut and order (ALBERT's script
    draws them anew for each of the `dupe_factor` copies it writes), and a run
    resumed mid-epoch sees exactly the pairs an uninterrupted run sees, in whatever
    order and DataLoader worker. The epoch is 0 until `set_epoch` changes it: with
    the Trainer, add `SentenceOrderEpochCallback(train_dataset)`, and leave an
    evaluation set at epoch 0 (the same pairs at every evaluation).

    Examples (unpadded): input_ids = [CLS] A [SEP] B [SEP], token_type_ids (0 for
    [CLS] A [SEP], 1 for B [SEP]), attention_mask, special_tokens_mask and
    sentence_order_label. The result depends only on `seed` and the data (each
    document gets its own random stream), not on `num_proc` or batching.
    `max_examples` keeps the first that many chunks. A map-style `Dataset` gives a
    `SentenceOrderPairs` (a torch map-style dataset), an `IterableDataset` a
    `StreamedSentenceOrderPairs`.

    Example:
        >>> sop = build_sop_dataset(documents, tokenizer, max_seq_length=128, max_position_embeddings=512)
        >>> sorted(sop[0])
        ['attention_mask', 'input_ids', 'sentence_order_label', 'special_tokens_mask', 'token_type_ids']
    """
    chunks = build_sop_chunks(
        documents_dataset, tokenizer, max_seq_length, short_seq_prob, seed, num_proc, max_position_embeddings
    )
    if max_examples is not None:
        streamed = isinstance(chunks, IterableDataset)
        chunks = chunks.take(max_examples) if streamed else chunks.select(range(min(max_examples, len(chunks))))
    pairs_class = StreamedSentenceOrderPairs if isinstance(chunks, IterableDataset) else SentenceOrderPairs
    return pairs_class(chunks, tokenizer, seed, sentence_order)


def build_sop_chunks(
    documents_dataset: Dataset | IterableDataset,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int = 128,
    short_seq_prob: float = 0.1,
    seed: int = 42,
    num_proc: int | None = None,
    max_position_embeddings: int | None = None,
) -> Dataset | IterableDataset:
    """The chunks `build_sop_dataset` draws its pairs from (see there): columns input_ids (the chunk's tokens, no
    special tokens) and line_breaks (the positions inside the chunk where a source line ends). Linear in time and
    memory in the length of a document, however long its lines."""
    check_special_tokens(tokenizer)
    check_max_seq_length(max_seq_length, max_position_embeddings)
    columns = documents_dataset.column_names
    if columns is not None and DOCUMENT_COLUMN not in columns:
        raise ValueError(f"documents dataset needs a {DOCUMENT_COLUMN!r} column (list of str); it has {columns}")
    make_chunks = functools.partial(
        _chunk_examples,
        tokenizer=tokenizer,
        continues_word=continuation_flags(tokenizer),
        max_num_tokens=max_seq_length - 3,
        short_seq_prob=short_seq_prob,
        seed=seed,
    )
    map_kwargs = dict(
        batched=True, with_indices=True, remove_columns=columns or [DOCUMENT_COLUMN], features=CHUNK_FEATURES
    )
    if isinstance(documents_dataset, Dataset):
        map_kwargs.update(num_proc=num_proc, desc="Packing sentence-order chunks")
    return documents_dataset.map(make_chunks, **map_kwargs)


def _chunk_examples(
    batch: dict[str, list],
    indices: list[int],
    *,
    tokenizer: PreTrainedTokenizerBase,
    continues_word: np.ndarray,
    max_num_tokens: int,
    short_seq_prob: float,
    seed: int,
) -> dict[str, list[list[int]]]:
    """Batched `datasets.map` function: documents in, chunks out."""
    documents = batch[DOCUMENT_COLUMN]
    lines = [line for document in documents for line in document]
    token_ids = []
    if lines:
        encoding = tokenizer(
            lines, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False, verbose=False
        )
        token_ids = encoding["input_ids"]
    chunks = {name: [] for name in CHUNK_FEATURES}
    offset = 0
    for document, index in zip(documents, indices):
        document_ids = token_ids[offset : offset + len(document)]
        offset += len(document)
        rng = np.random.default_rng([seed, index])
        for tokens, line_breaks in _document_chunks(document_ids, continues_word, max_num_tokens, short_seq_prob, rng):
            chunks["input_ids"].append(tokens)
            chunks["line_breaks"].append(line_breaks)
    return chunks


def _document_chunks(
    lines_ids: list[list[int]],
    continues_word: np.ndarray,
    max_num_tokens: int,
    short_seq_prob: float,
    rng: np.random.Generator,
) -> Iterator[tuple[list[int], list[int]]]:
    """Yield (tokens, line_breaks) for the chunks of one tokenized document.

    The document is one flat array and chunk ends are found by binary search, so that a line of any length costs
    time and memory in proportion to it (slicing the rest of a long line off at every chunk did not).
    """
    lengths = np.array([len(ids) for ids in lines_ids], dtype=np.int64)
    tokens = np.fromiter(itertools.chain.from_iterable(lines_ids), dtype=np.int32, count=int(lengths.sum()))
    line_ends = np.unique(np.cumsum(lengths)).tolist()  # an empty line ends where the one before it does
    # where a chunk may end: before a token that starts a word (every line starts one)
    word_starts = np.union1d(np.flatnonzero(~continues_word[tokens]), [0, *line_ends]).tolist()
    start = 0
    while start < len(tokens):
        end = min(start + _target_length(max_num_tokens, short_seq_prob, rng), len(tokens))
        last_word_start = word_starts[bisect.bisect_right(word_starts, end) - 1]
        if last_word_start > start:  # else a single word is longer than the chunk: cut it
            end = last_word_start
        if end - start >= 2:  # a lone last token cannot make a pair
            inside = line_ends[bisect.bisect_right(line_ends, start) : bisect.bisect_left(line_ends, end)]
            yield tokens[start:end].tolist(), [line_end - start for line_end in inside]
        start = end


def _target_length(max_num_tokens: int, short_seq_prob: float, rng: np.random.Generator) -> int:
    # Occasional short sequences reduce the mismatch with short fine-tuning inputs.
    if rng.random() < short_seq_prob:
        return int(rng.integers(2, max_num_tokens + 1))
    return max_num_tokens


class _SentenceOrderPairs:
    """What the map-style and the streamed pair datasets share: the pair of one chunk for the current epoch."""

    def __init__(self, chunks: Dataset | IterableDataset, tokenizer: PreTrainedTokenizerBase, seed: int,
                 sentence_order: bool = True):
        self.chunks, self.seed, self.epoch, self.sentence_order = chunks, seed, 0, sentence_order
        self.cls_id, self.sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
        self.continues_word = continuation_flags(tokenizer)

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's pairs from now on. DataLoader workers copy the dataset as an epoch's iteration starts:
        set the epoch before that (as `SentenceOrderEpochCallback` does)."""
        self.epoch = epoch
        if hasattr(self.chunks, "set_epoch"):  # a streamed dataset's own shuffling
            self.chunks.set_epoch(epoch)

    def _example(self, chunk: dict) -> dict:
        tokens = np.asarray(chunk["input_ids"], dtype=np.int32)
        # A hash of (seed, epoch, the chunk itself) draws the cut and the order: independent of the order chunks come
        # in and of the DataLoader worker that reads them.
        key = f"{self.seed} {self.epoch} ".encode() + tokens.tobytes()
        draw = int.from_bytes(hashlib.blake2b(key, digest_size=16).digest(), "little")
        if not self.sentence_order:
            draw &= 2**64 - 1  # bit 64, the swap, cleared
        segment_a, segment_b, label = _sentence_order_pair(tokens, chunk["line_breaks"], self.continues_word, draw)
        example = _pair_example(segment_a.tolist(), segment_b.tolist(), label, self.cls_id, self.sep_id)
        if not self.sentence_order:
            del example["sentence_order_label"]
        return example


class SentenceOrderPairs(_SentenceOrderPairs, torch.utils.data.Dataset):
    """A torch map-style dataset of SOP examples, one per chunk, drawn for the current epoch (`build_sop_dataset`)."""

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, index: int) -> dict:
        return self._example(self.chunks[index])

    def __getitems__(self, indices: list[int]) -> list[dict]:
        """A batch's examples from one read of the chunk table (what a DataLoader asks for)."""
        rows = self.chunks[indices]
        return [self._example(dict(zip(rows, values))) for values in zip(*rows.values())]


class StreamedSentenceOrderPairs(_SentenceOrderPairs, torch.utils.data.IterableDataset):
    """`SentenceOrderPairs` over a streamed (`datasets.IterableDataset`) chunk dataset."""

    def __iter__(self) -> Iterator[dict]:
        return (self._example(chunk) for chunk in self.chunks)


def _sentence_order_pair(
    tokens: np.ndarray, line_breaks: list[int], continues_word: np.ndarray, draw: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """(segment_a, segment_b, sentence_order_label) of one chunk: cut at a random line break inside it, or, within a
    single line, at a random word start (any token when the chunk is one word); swapped, label 1, with probability
    0.5. A + B (swapped back) is always the chunk. `draw` is a random 128-bit number: its low 64 bits pick the cut,
    bit 64 the order."""
    cuts = np.asarray(line_breaks, dtype=np.int64)
    if len(cuts) == 0:
        cuts = np.flatnonzero(~continues_word[tokens[1:]]) + 1
    if len(cuts) == 0:
        cuts = np.arange(1, len(tokens))
    cut = int(cuts[(draw & (2**64 - 1)) % len(cuts)])
    segment_a, segment_b = tokens[:cut], tokens[cut:]
    if draw >> 64 & 1:
        return segment_b, segment_a, 1
    return segment_a, segment_b, 0


def _pair_example(segment_a: list[int], segment_b: list[int], label: int, cls_id: int, sep_id: int) -> dict:
    return {
        "input_ids": [cls_id, *segment_a, sep_id, *segment_b, sep_id],
        "token_type_ids": [0] * (len(segment_a) + 2) + [1] * (len(segment_b) + 1),
        "attention_mask": [1] * (len(segment_a) + len(segment_b) + 3),
        "special_tokens_mask": [1] + [0] * len(segment_a) + [1] + [0] * len(segment_b) + [1],
        "sentence_order_label": label,
    }


class SentenceOrderEpochCallback(TrainerCallback):
    """Tells `build_sop_dataset` datasets the epoch as each one begins, so that their pairs are drawn anew every epoch.

    A resumed run is told the epoch it resumes in, before its DataLoader starts (and copies the dataset into its
    workers), so it sees the pairs the uninterrupted run saw. DataLoader workers kept across epochs
    (`dataloader_persistent_workers`) would keep the first epoch's copy, so they are refused.
    """

    def __init__(self, *datasets: _SentenceOrderPairs):
        self.datasets = datasets

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: object
    ) -> None:
        if args.dataloader_persistent_workers and args.dataloader_num_workers > 0:
            raise ValueError(
                "dataloader_persistent_workers=True keeps the DataLoader workers' copy of the sentence-order dataset "
                "from the first epoch, so its pairs would not change between epochs; set it to False"
            )

    def on_epoch_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: object
    ) -> None:
        for dataset in self.datasets:
            dataset.set_epoch(math.floor(state.epoch))
