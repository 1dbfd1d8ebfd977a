"""N-gram masking for MLM, as in ALBERT: `DataCollatorForNgramMLM` pads sentence-order pairs (from
`litebert.sentence_order`) into a batch and masks n-grams of whole words; with a TNF rare-word vocabulary it also marks
the rare words' occurrences (`litebert.tnf_data`).

Example:
    >>> collator = DataCollatorForNgramMLM(tokenizer, pad_to_multiple_of=8)
    >>> trainer = Trainer(model, args, train_dataset=train_dataset, data_collator=collator)
"""

import functools
import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from .tnf_data import RareWordFinder, RareWordVocabulary
from .tokenization import check_special_tokens, continuation_flags

# Of the tokens chosen for MLM: 80% become [MASK], 10% a random token, 10% stay as they are.
MASK_REPLACE_PROB = 0.8
RANDOM_REPLACE_PROB = 0.1


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
