"""ALBERT-style pretraining data: documents -> sentence-order pairs -> n-gram masked batches.

Three steps, each usable with the stock `transformers.Trainer`:

1. `load_documents` (or `read_documents`) turns text files or a `datasets` text
   column into documents, one row per document, column "lines" (list of str).
2. `build_sop_dataset` packs each document's lines into chunks, and draws from
   each chunk a `[CLS] A [SEP] B [SEP]` pair for sentence-order prediction (SOP)
   anew every epoch (`SentenceOrderEpochCallback` tells it the epoch).
3. `DataCollatorForNgramMLM` pads a batch and masks n-grams of whole words for MLM.

Example:
    >>> documents = load_documents(train_files=["wiki.train.txt"])
    >>> train_dataset = build_sop_dataset(documents, tokenizer, max_seq_length=128)
    >>> collator = DataCollatorForNgramMLM(tokenizer)
    >>> trainer = Trainer(model, args, train_dataset=train_dataset, data_collator=collator,
    ...                   callbacks=[SentenceOrderEpochCallback(train_dataset)])
"""

import bisect
import functools
import hashlib
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from datasets import Dataset, Features, IterableDataset, Sequence, Value
from transformers import PreTrainedTokenizerBase, TrainerCallback

from .documents import (  # noqa: F401
    DOCUMENT_COLUMN,
    DOCUMENT_FEATURES,
    heading_level,
    load_documents,
    read_documents,
)
from .tnf_data import RareWordFinder, RareWordVocabulary
from .tokenization import check_special_tokens, continuation_flags

# A chunk: its tokens (no special tokens) and the positions inside it where a source line ends.
CHUNK_FEATURES = Features({"input_ids": Sequence(Value("int32")), "line_breaks": Sequence(Value("int32"))})
MIN_SEQ_LENGTH = 5  # [CLS] a [SEP] b [SEP]: one token per segment

# Of the tokens chosen for MLM: 80% become [MASK], 10% a random token, 10% stay as they are.
MASK_REPLACE_PROB = 0.8
RANDOM_REPLACE_PROB = 0.1

# ----------------------------------------------------------------------------
# sentence-order-prediction pairs


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
) -> "SentenceOrderPairs | StreamedSentenceOrderPairs":
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
    return pairs_class(chunks, tokenizer, seed)


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
    batch: dict, indices: list[int], *, tokenizer, continues_word, max_num_tokens, short_seq_prob, seed
) -> dict:
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

    def __init__(self, chunks: Dataset | IterableDataset, tokenizer: PreTrainedTokenizerBase, seed: int):
        self.chunks, self.seed, self.epoch = chunks, seed, 0
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
        segment_a, segment_b, label = _sentence_order_pair(tokens, chunk["line_breaks"], self.continues_word, draw)
        return _pair_example(segment_a.tolist(), segment_b.tolist(), label, self.cls_id, self.sep_id)


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
    tokens: np.ndarray, line_breaks, continues_word: np.ndarray, draw: int
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

    def on_train_begin(self, args, state, control, **kwargs):
        if args.dataloader_persistent_workers and args.dataloader_num_workers > 0:
            raise ValueError(
                "dataloader_persistent_workers=True keeps the DataLoader workers' copy of the sentence-order dataset "
                "from the first epoch, so its pairs would not change between epochs; set it to False"
            )

    def on_epoch_begin(self, args, state, control, **kwargs):
        for dataset in self.datasets:
            dataset.set_epoch(math.floor(state.epoch))


# ----------------------------------------------------------------------------
# n-gram masking


@dataclass
class DataCollatorForNgramMLM:
    """Pad SOP examples into a batch and mask n-grams of whole words for MLM, as in ALBERT.

    ALBERT (Lan et al., 2020, §4.1) masks n-grams of complete words ("White House
    correspondents"), n <= 3, with p(n) = (1/n) / sum_k 1/k. Here, per sequence,
    exactly max(1, round(mlm_probability * units)) units are chosen, where the units
    are the whole words made of non-special, non-padding tokens (or single tokens,
    see below). They are chosen as n-grams of n = 1..max_ngram units with p(n) ∝ 1/n,
    never crossing a special token or padding:
    - span lengths are drawn first and redrawn until they sum exactly to the budget.
      That condition alone would favour short spans (a long span has fewer ways to
      end inside the budget), so the draw uses probabilities corrected for it and the
      chosen spans follow p(n) ∝ 1/n;
    - spans are then placed ALBERT-style, longest first: a start is drawn at random
      among the starts whose span overlaps no chosen unit (if none is left for n
      units in a row, the span is split in two).
    Chosen tokens become [MASK] (80%), a random non-special token (10%) or stay
    unchanged (10%); `labels` holds their original ids and -100 elsewhere. A sequence
    with nothing to mask (only special tokens, e.g. text the vocabulary only knows as
    [UNK]) gets no labels.

    whole_word_masking (default, as ALBERT's create_pretraining_data): a unit is a
    whole word: a token continues the previous word when it starts with "##"
    (WordPiece), or when it lacks a "▁"/"Ġ" word-start marker (SentencePiece,
    byte-level BPE); the convention is read from the vocab. A word is a token and all
    the continuation pieces after it, so a piece is never masked without its head and
    the rest of its word. The budget counts words, so about 15% of tokens are masked
    on average (ALBERT's script counts tokens, and skips an n-gram that would overrun
    it). whole_word_masking=False makes every token a unit (sub-word n-grams).

    The batch has input_ids, attention_mask, labels, and token_type_ids and
    sentence_order_label when the examples have them. `special_tokens_mask` is read
    when present (the Trainer drops it as an unused column; special ids are
    recognised anyway) and not returned. `return_spans=True` adds "spans": per
    sequence, a list of (start, end, n) token positions [start, end) of each
    n-gram, for inspection only (a model does not accept it).

    rare_words: for TNF, a `RareWordVocabulary`; the batch then also has
    "tnf_occurrences", rows (batch_index, start, end, rare_word_id) with token
    positions start..end inclusive, for every whole-word occurrence of a rare word.
    Occurrences are found on the text before masking, so a rare word whose pieces
    are masked still gets its note mixed into its (masked) embeddings, as the
    note describes its context rather than its own tokens.

    Randomness: with `seed`, the collator's own stream (each DataLoader worker gets
    its own); without, a stream keyed by torch's initial seed and the batch's ids,
    which makes a resumed run mask exactly as an uninterrupted one (what
    `litebert-pretrain` uses).

    Example:
        >>> collator = DataCollatorForNgramMLM(tokenizer, pad_to_multiple_of=8, seed=0)
        >>> batch = collator([sop_dataset[0], sop_dataset[1]])
        >>> sorted(batch)
        ['attention_mask', 'input_ids', 'labels', 'sentence_order_label', 'token_type_ids']
    """

    tokenizer: PreTrainedTokenizerBase
    mlm_probability: float = 0.15
    max_ngram: int = 3
    whole_word_masking: bool = True
    pad_to_multiple_of: int | None = None
    seed: int | None = None
    return_spans: bool = False
    rare_words: RareWordVocabulary | None = None

    def __post_init__(self):
        check_special_tokens(self.tokenizer)
        if not 0 < self.mlm_probability < 1:
            raise ValueError(f"mlm_probability must be in (0, 1), got {self.mlm_probability}")
        if self.max_ngram < 1:
            raise ValueError(f"max_ngram must be at least 1, got {self.max_ngram}")
        self._special_ids = np.array(sorted(set(self.tokenizer.all_special_ids)))
        vocab_ids = np.arange(len(self.tokenizer))
        self._random_ids = vocab_ids[~np.isin(vocab_ids, self._special_ids)]
        word_flags = continuation_flags(self.tokenizer) if self.whole_word_masking or self.rare_words else None
        self._continues_word = word_flags if self.whole_word_masking else None
        self._rare_word_finder = None
        if self.rare_words:
            self._rare_word_finder = RareWordFinder(self.rare_words, word_flags, self._special_ids)
        self._rng, self._rng_owner = None, None

    def __call__(self, examples: list[dict]) -> dict:
        batch = self._pad(examples)
        input_ids = batch["input_ids"]
        candidates = (batch["attention_mask"] == 1) & ~np.isin(input_ids, self._special_ids)
        if "special_tokens_mask" in batch:
            candidates &= batch.pop("special_tokens_mask") == 0
        if self._rare_word_finder is not None:  # before masking: see the class docstring
            occurrences = self._rare_word_finder.find(input_ids, batch["attention_mask"])
        rng = self._generator(input_ids)

        spans = [self._choose_spans(ids, row_candidates, rng) for ids, row_candidates in zip(input_ids, candidates)]
        chosen = np.zeros_like(candidates)
        for row, row_spans in enumerate(spans):
            for start, end, _ in row_spans:
                chosen[row, start:end] = True
        batch["labels"] = np.where(chosen, input_ids, -100)

        roll = rng.random(input_ids.shape)
        to_mask = chosen & (roll < MASK_REPLACE_PROB)
        to_random = chosen & (roll >= MASK_REPLACE_PROB) & (roll < MASK_REPLACE_PROB + RANDOM_REPLACE_PROB)
        input_ids[to_mask] = self.tokenizer.mask_token_id
        input_ids[to_random] = rng.choice(self._random_ids, size=int(to_random.sum()))

        if self._rare_word_finder is not None:
            batch["tnf_occurrences"] = occurrences
        batch = {name: torch.from_numpy(values.astype(np.int64)) for name, values in batch.items()}
        if self.return_spans:
            batch["spans"] = spans
        return batch

    def _pad(self, examples: list[dict]) -> dict[str, np.ndarray]:
        """Right-pad the per-token columns to the longest example (rounded up to pad_to_multiple_of)."""
        length = max(len(example["input_ids"]) for example in examples)
        if self.pad_to_multiple_of:
            length = math.ceil(length / self.pad_to_multiple_of) * self.pad_to_multiple_of
        pad_values = {
            "input_ids": self.tokenizer.pad_token_id,
            "token_type_ids": self.tokenizer.pad_token_type_id,
            "special_tokens_mask": 1,
        }
        batch = {}
        for name, pad_value in pad_values.items():
            if name not in examples[0]:
                continue
            padded = np.full((len(examples), length), pad_value, dtype=np.int64)
            for row, example in enumerate(examples):
                values = np.asarray(example[name])
                padded[row, : len(values)] = values
            batch[name] = padded
        lengths = np.array([len(example["input_ids"]) for example in examples])
        batch["attention_mask"] = (np.arange(length) < lengths[:, None]).astype(np.int64)
        if "sentence_order_label" in examples[0]:
            batch["sentence_order_label"] = np.array([int(e["sentence_order_label"]) for e in examples])
        return batch

    def _generator(self, input_ids: np.ndarray) -> np.random.Generator:
        """The RNG for one batch.

        With `seed`: this collator's own stream (a DataLoader worker reseeds its copy), reproducible on its own.
        Without: a stream keyed by torch's initial seed (which the Trainer sets from `--seed`) and the batch's
        token ids. Masks then depend on nothing else, so a run resumed from a checkpoint masks exactly as the
        uninterrupted run did, and DataLoader workers need no coordination; batches differ from epoch to epoch
        because the sampler shuffles, so their masks do too.
        """
        if self.seed is None:
            digest = hashlib.blake2b(np.ascontiguousarray(input_ids).tobytes(), digest_size=16).digest()
            return np.random.default_rng([torch.initial_seed() % 2**63, *np.frombuffer(digest, dtype=np.uint32)])
        worker = torch.utils.data.get_worker_info()
        owner = worker.seed if worker is not None else None
        if self._rng is None or owner != self._rng_owner:
            self._rng = np.random.default_rng([self.seed] if owner is None else [self.seed, owner])
            self._rng_owner = owner
        return self._rng

    def _choose_spans(self, ids: np.ndarray, candidates: np.ndarray, rng: np.random.Generator):
        """(start, end, n) token positions of the n-grams chosen in one sequence."""
        if not candidates.any():  # nothing to mask: the sequence gets no labels
            return []
        unit_starts, unit_ends, unit_runs = _maskable_units(ids, candidates, self._continues_word)
        budget = max(1, round(self.mlm_probability * len(unit_starts)))
        lengths = _draw_span_lengths(budget, self.max_ngram, rng)
        spans = _place_spans(lengths, unit_runs, rng)
        return sorted((int(unit_starts[u]), int(unit_ends[u + n - 1]), n) for u, n in spans)


def _maskable_units(ids: np.ndarray, candidates: np.ndarray, continues_word: np.ndarray | None):
    """Split the candidate positions (at least one) into units (tokens, or whole words when `continues_word` is given).

    Returns each unit's first position, its end (one past its last position), and the
    id of its run of adjacent candidates: n-grams stay inside one run, so they never
    cover a special token or padding.
    """
    after_candidate = np.r_[False, candidates[:-1]]
    unit_begins = candidates.copy()
    if continues_word is not None:
        unit_begins &= ~(continues_word[ids] & after_candidate)
    positions = np.flatnonzero(candidates)
    first_in_unit = np.flatnonzero(unit_begins[positions])  # indices into positions
    last_in_unit = np.r_[first_in_unit[1:], len(positions)] - 1
    run_ids = np.cumsum(candidates & ~after_candidate) - 1
    unit_starts = positions[first_in_unit]
    return unit_starts, positions[last_in_unit] + 1, run_ids[unit_starts]


def _draw_span_lengths(budget: int, max_ngram: int, rng: np.random.Generator) -> np.ndarray:
    """Span lengths (in units) that sum exactly to `budget`."""
    probs = _span_length_probs(budget, max_ngram)
    while True:
        lengths = rng.choice(np.arange(1, len(probs) + 1), size=budget, p=probs)
        totals = np.cumsum(lengths)
        stop = np.searchsorted(totals, budget)  # the first draw reaching the budget
        if totals[stop] == budget:
            return lengths[: stop + 1]


@functools.lru_cache(maxsize=None)
def _span_length_probs(budget: int, max_ngram: int) -> np.ndarray:
    """Probabilities q(n) such that lengths drawn from q, kept only when they sum
    exactly to `budget`, have the shares p(n) ∝ 1/n (n up to min(max_ngram, budget))."""
    target = 1.0 / np.arange(1, min(max_ngram, budget) + 1)
    target /= target.sum()
    probs = target.copy()
    for _ in range(100):  # fixed-point iteration, done in under 20 steps
        shares = _length_shares(probs, budget)
        if np.allclose(shares, target, rtol=0, atol=1e-9):
            break
        probs *= target / shares
        probs /= probs.sum()
    return probs


def _length_shares(probs: np.ndarray, budget: int) -> np.ndarray:
    """Expected share of each span length among lengths drawn from `probs` that sum exactly to `budget`."""
    # reach[m]: probability that the running total of drawn lengths equals m at some point
    reach = np.zeros(budget + 1)
    reach[0] = 1.0
    for total in range(1, budget + 1):
        n = np.arange(1, min(len(probs), total) + 1)
        reach[total] = probs[n - 1] @ reach[total - n]
    # a span of length n fits wherever the total before it is j and the rest reaches budget - j - n
    counts = np.array(
        [probs[n - 1] * reach[: budget - n + 1] @ reach[budget - n :: -1] for n in range(1, len(probs) + 1)]
    )
    return counts / counts.sum()


def _place_spans(lengths: np.ndarray, unit_runs: np.ndarray, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Place spans of the given lengths on free units; returns (first unit, n) pairs."""
    free = np.ones(len(unit_runs), dtype=bool)
    pending = sorted(int(n) for n in lengths)  # longest last, popped first: long spans are the hardest to fit
    placed = []
    while pending:
        n = pending.pop()
        starts = _free_starts(free, unit_runs, n)
        if len(starts) == 0:  # no n free units in a row are left: split the span
            pending = [1] + pending + [n - 1]
            continue
        start = int(rng.choice(starts))
        free[start : start + n] = False
        placed.append((start, n))
    return placed


def _free_starts(free: np.ndarray, unit_runs: np.ndarray, n: int) -> np.ndarray:
    """Units where n free units of one run begin."""
    count = len(free) - n + 1
    if count <= 0:
        return np.array([], dtype=int)
    ok = free[:count].copy()
    for k in range(1, n):
        ok &= free[k : k + count] & (unit_runs[k : k + count] == unit_runs[:count])
    return np.flatnonzero(ok)
