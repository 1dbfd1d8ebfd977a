"""Tokenizers for ALBERT-style pretraining.

`train_tokenizer` builds a SentencePiece-style Unigram tokenizer the way ALBERT's
is built (NFKC, optional lowercasing, "▁" word-start marker), with ALBERT's special
tokens and ids:

    <pad>=0  <unk>=1  [CLS]=2  [SEP]=3  [MASK]=4

`litebert.pretraining_data` only uses a tokenizer's public API and its special
token ids, so any fast tokenizer that passes `check_special_tokens` (e.g. a BERT
WordPiece one) works there as well.
"""

import os

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

PAD, UNK, CLS, SEP, MASK = "<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"

# What MLM + sentence-order-prediction pretraining needs from a tokenizer.
REQUIRED_SPECIAL_TOKENS = ("cls_token", "sep_token", "mask_token", "pad_token", "unk_token")


def train_tokenizer(
    texts_or_files,
    vocab_size: int = 30000,
    lowercase: bool = True,
    model_max_length: int = 512,
    show_progress: bool = True,
) -> PreTrainedTokenizerFast:
    """Train an ALBERT-style Unigram tokenizer.

    `texts_or_files` is either file paths (a `str`/`PathLike`, or a list/tuple of
    them), read line by line by the `tokenizers` library, or any other iterable of
    strings, which is consumed as a stream. To train on a list of texts held in
    memory, pass `iter(texts)`.

    The returned tokenizer encodes pairs as `[CLS] A [SEP] B [SEP]` with
    token_type_ids 0 for `[CLS] A [SEP]` and 1 for `B [SEP]`; `save_pretrained`
    writes a folder that `AutoTokenizer.from_pretrained` loads back unchanged.

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
        tokenizer.train(files, trainer)
    else:
        length = len(texts_or_files) if hasattr(texts_or_files, "__len__") else None
        tokenizer.train_from_iterator(texts_or_files, trainer, length=length)

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


def _as_file_list(texts_or_files) -> list[str] | None:
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
