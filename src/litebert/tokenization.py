"""Tokenizers for ALBERT-style pretraining.

`train_tokenizer` builds a SentencePiece-style Unigram tokenizer the way ALBERT's
is built (NFKC, optional lowercasing, "▁" word-start marker), with ALBERT's special
tokens and ids:

    <pad>=0  <unk>=1  [CLS]=2  [SEP]=3  [MASK]=4

The pretraining data steps (`litebert.documents`, `litebert.sentence_order`,
`litebert.masking`) only use a tokenizer's public API, its special token ids and
`continuation_flags` (where words start, read from the vocab), so any fast tokenizer
that passes `check_special_tokens` (e.g. a BERT WordPiece one) works there as well.
TNF's rare-word vocabulary lives in `litebert.tnf_data` (its names are importable
from here too).
"""

import json
import os
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from .tasks.io import DataFormatError
from .tnf_data import (  # noqa: F401  TNF's rare-word vocabulary moved to tnf_data; older imports keep working
    RARE_WORDS_FILE,
    RareWordVocabulary,
    build_rare_word_vocabulary,
    count_words,
    tokenizer_words,
)

PAD, UNK, CLS, SEP, MASK = "<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)

# The Unigram trainer gives the characters it pruned the scores min, min + 1e-4, min + 2e-4, ... (its
# min_score_penalty_delta), in the order of a randomly seeded hash set.
PRUNED_CHARACTER_SCORE_STEP = 1e-4
# Trained scores are rounded to this many decimals: far coarser than the last-bit differences between runs, far
# finer than what changes a segmentation.
SCORE_DECIMALS = 5

# What MLM + sentence-order-prediction pretraining needs from a tokenizer.
REQUIRED_SPECIAL_TOKENS = ("cls_token", "sep_token", "mask_token", "pad_token", "unk_token")
WORD_START_MARKERS = ("▁", "Ġ")  # SentencePiece and byte-level BPE mark the first piece of a word


def train_tokenizer(
    texts_or_files: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | Iterable[str],
    vocab_size: int = 30000,
    lowercase: bool = True,
    model_max_length: int = 512,
    show_progress: bool = True,
) -> PreTrainedTokenizerFast:
    """Train an ALBERT-style Unigram tokenizer.

    `texts_or_files` is either file paths (a `str`/`PathLike`, or a list/tuple of
    them), read line by line by the `tokenizers` library, or any other iterable of
    strings, which is consumed as a stream. To train on a list of texts held in
    memory, pass `iter(texts)`. A missing file raises FileNotFoundError, a file that
    is not UTF-8 a DataFormatError naming its first bad byte, and a corpus without
    any text ValueError (naming the files).

    The returned tokenizer encodes pairs as `[CLS] A [SEP] B [SEP]` with
    token_type_ids 0 for `[CLS] A [SEP]` and 1 for `B [SEP]`; `save_pretrained`
    writes a folder that `AutoTokenizer.from_pretrained` loads back unchanged.

    Deterministic: the same corpus and settings give a byte-identical tokenizer.json
    in every process, whatever the thread count. The `tokenizers` Unigram trainer
    itself is not: it iterates its word counts in the order of a hash map seeded at
    random per process, so its scores differ in the last bits from run to run (the
    E-step sums in that order), and the characters it pruned get the scores
    min, min + 1e-4, ... in that order too. `canonical_unigram` therefore hands those
    scores to the characters in code-point order, rounds every score to 5 decimals
    and sorts equal scores by piece. Caveat: a score lying within about 1e-13 of a
    rounding boundary, or two pruning candidates whose losses tie to the last bit,
    could still make two runs differ (never seen, and the odds are about 1e-4 per
    training or less).

    Example:
        >>> tokenizer = train_tokenizer(["corpus/train.txt"], vocab_size=8000)
        >>> list(tokenizer("first segment", "second segment"))
        ['input_ids', 'token_type_ids', 'attention_mask']
        >>> tokenizer.save_pretrained("my-tokenizer")
    """
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFKC()]
        + ([normalizers.Lowercase()] if lowercase else [])
        + [normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()

    # lstrip lets "a [MASK] b" encode without a stray "▁" piece before the mask.
    mask = AddedToken(MASK, lstrip=True, normalized=False, special=True)
    # The trainer puts special tokens first, in this order: ALBERT's ids 0..4.
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=[PAD, UNK, CLS, SEP, mask], unk_token=UNK, show_progress=show_progress
    )
    files = _as_file_list(texts_or_files)
    if files is not None:
        _train_on_files(tokenizer, trainer, files)
    else:
        length = len(texts_or_files) if hasattr(texts_or_files, "__len__") else None
        texts = _TextCounter(texts_or_files)
        tokenizer.train_from_iterator(texts, trainer, length=length)
        if texts.nonblank == 0:
            raise ValueError("empty corpus: the texts given to train_tokenizer hold no text")
    tokenizer.model = canonical_unigram(tokenizer)

    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{CLS}:0 $A:0 {SEP}:0",
        pair=f"{CLS}:0 $A:0 {SEP}:0 $B:1 {SEP}:1",
        special_tokens=[(CLS, tokenizer.token_to_id(CLS)), (SEP, tokenizer.token_to_id(SEP))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD,
        unk_token=UNK,
        cls_token=CLS,
        sep_token=SEP,
        mask_token=mask,
        model_max_length=model_max_length,
        padding_side="right",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def _train_on_files(tokenizer: Tokenizer, trainer: trainers.Trainer, files: list[str]) -> None:
    empty = [path for path in files if not _has_text(path)]
    if len(empty) == len(files):
        raise ValueError(f"empty corpus: no text found in {', '.join(files)}")
    try:
        tokenizer.train(files, trainer)
    except Exception as error:  # tokenizers says only "stream did not contain valid UTF-8": find where
        for path in files:
            encoding_error = utf8_error(path)
            if encoding_error is not None:
                raise encoding_error from error
        raise


def _has_text(path: str) -> bool:
    with open(path, "rb") as file:
        return any(line.strip() for line in file)


class _TextCounter:
    """Passes texts through, counting the non-blank ones (an empty corpus would train a tokenizer of bare letters)."""

    def __init__(self, texts: Iterable[str]):
        self.texts, self.nonblank = texts, 0

    def __iter__(self) -> Iterator[str]:
        for text in self.texts:
            self.nonblank += bool(text.strip())
            yield text


def utf8_error(path: str | os.PathLike[str]) -> DataFormatError | None:
    """A DataFormatError naming the line and byte offset of the first byte of `path` that is not UTF-8, or None
    when the whole file is UTF-8. Reads bytes line by line: a newline byte never occurs inside a UTF-8 sequence."""
    offset = 0
    with open(path, "rb") as file:
        for number, line in enumerate(file, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as error:
                bad = line[error.start]
                return DataFormatError(
                    path, f"line {number}, byte {offset + error.start}",
                    f"not UTF-8 text (byte 0x{bad:02x}: {error.reason}); re-encode the file as UTF-8",
                )
            offset += len(line)
    return None


def canonical_unigram(tokenizer: Tokenizer) -> models.Unigram:
    """The trained Unigram model with the trainer's run-to-run differences taken out (see `train_tokenizer`):
    pruned characters' scores handed out in code-point order, scores rounded, equal scores sorted by piece. The
    special tokens keep their ids."""
    model = json.loads(tokenizer.to_str())["model"]
    vocab = [(piece, score) for piece, score in model["vocab"]]
    specials, pieces = vocab[: len(SPECIAL_TOKENS)], vocab[len(SPECIAL_TOKENS) :]
    if [piece for piece, _ in specials] != list(SPECIAL_TOKENS):
        raise RuntimeError(f"the Unigram trainer did not put {SPECIAL_TOKENS} first: {specials}")
    pieces = _reorder_pruned_character_scores(pieces)
    pieces = sorted(((piece, round(score, SCORE_DECIMALS)) for piece, score in pieces), key=lambda p: (-p[1], p[0]))
    return models.Unigram(specials + pieces, model["unk_id"], model["byte_fallback"])


def _reorder_pruned_character_scores(pieces: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Hand out the scores of the pruned characters' ladder (min, min + step, ... in hash order) in code-point order.

    The characters at the bottom score `min` mix the first pruned character with the model's own least frequent
    pieces, so all of them join the ladder: every character on it keeps one of its scores, in code-point order.
    """
    if not pieces:
        return pieces
    lowest = min(score for _, score in pieces)
    rungs = {}  # rung k (score lowest + k * step) -> its single characters
    for piece, score in pieces:
        steps = (score - lowest) / PRUNED_CHARACTER_SCORE_STEP
        if len(piece) == 1 and abs(steps - round(steps)) < 1e-6:
            rungs.setdefault(round(steps), []).append((piece, score))
    top = 0
    while top + 1 in rungs:  # the ladder climbs one step per pruned character
        top += 1
    ladder = [entry for k in range(top + 1) for entry in rungs[k]]
    reassigned = dict(zip(sorted(piece for piece, _ in ladder), sorted(score for _, score in ladder)))
    return [(piece, reassigned.get(piece, score)) for piece, score in pieces]


def _as_file_list(
    texts_or_files: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | Iterable[str],
) -> list[str] | None:
    """File paths to train on, or None when the argument is a stream of texts."""
    if isinstance(texts_or_files, (str, os.PathLike)):
        texts_or_files = [texts_or_files]
    if not isinstance(texts_or_files, (list, tuple)):
        return None
    if not all(isinstance(path, (str, os.PathLike)) for path in texts_or_files):
        return None
    files = [os.fspath(path) for path in texts_or_files]
    for path in files:
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"training file not found: {path!r} (to train on texts held in a list, pass iter(texts))"
            )
    return files


def check_special_tokens(tokenizer: PreTrainedTokenizerBase) -> None:
    """Raise ValueError naming every special token MLM + SOP pretraining needs but the tokenizer lacks.

    Example:
        >>> check_special_tokens(AutoTokenizer.from_pretrained("gpt2"))
        ValueError: tokenizer lacks special tokens needed for MLM + SOP pretraining:
        cls_token, sep_token, mask_token, pad_token. ...
    """
    missing = [name for name in REQUIRED_SPECIAL_TOKENS if _special_token_id(tokenizer, name) is None]
    if missing:
        raise ValueError(
            f"tokenizer lacks special tokens needed for MLM + SOP pretraining: {', '.join(missing)}. "
            "Add them, e.g. tokenizer.add_special_tokens({'mask_token': '[MASK]'}), "
            "and resize the model's token embeddings."
        )


def _special_token_id(tokenizer: PreTrainedTokenizerBase, name: str) -> int | None:
    if getattr(tokenizer, name) is None:
        return None
    return getattr(tokenizer, f"{name}_id")


def continuation_flags(tokenizer: PreTrainedTokenizerBase) -> np.ndarray:
    """For each token id, whether that token continues the previous word: it starts with "##" (WordPiece), or lacks
    a "▁"/"Ġ" word-start marker (SentencePiece, byte-level BPE); which convention is read from the vocab."""
    tokens = [token or "" for token in tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))]
    wordpiece = sum(token.startswith("##") for token in tokens)
    marked_starts = sum(token.startswith(WORD_START_MARKERS) for token in tokens)
    if wordpiece > marked_starts:
        return np.array([token.startswith("##") for token in tokens])
    return np.array([not token.startswith(WORD_START_MARKERS) for token in tokens])
