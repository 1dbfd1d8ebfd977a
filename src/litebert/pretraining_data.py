"""ALBERT-style pretraining data: documents -> sentence-order pairs -> n-gram masked batches.

Three steps, each usable with the stock `transformers.Trainer`, each in its own module:

1. `litebert.documents`: `load_documents` (or `read_documents`) turns text files or a `datasets` text
   column into documents, one row per document, column "lines" (list of str).
2. `litebert.sentence_order`: `build_sop_dataset` packs each document's lines into chunks, and draws from
   each chunk a `[CLS] A [SEP] B [SEP]` pair for sentence-order prediction (SOP)
   anew every epoch (`SentenceOrderEpochCallback` tells it the epoch).
3. `litebert.masking`: `DataCollatorForNgramMLM` pads a batch and masks n-grams of whole words for MLM.

TNF's rare-word vocabulary and occurrence finder live in `litebert.tnf_data`. This module gathers the names of all
three steps, so that one import serves the whole pipeline.

Example:
    >>> documents = load_documents(train_files=["wiki.train.txt"])
    >>> train_dataset = build_sop_dataset(documents, tokenizer, max_seq_length=128)
    >>> collator = DataCollatorForNgramMLM(tokenizer)
    >>> trainer = Trainer(model, args, train_dataset=train_dataset, data_collator=collator,
    ...                   callbacks=[SentenceOrderEpochCallback(train_dataset)])
"""

from .documents import DOCUMENT_COLUMN, DOCUMENT_FEATURES, heading_level, load_documents, read_documents
from .masking import MASK_REPLACE_PROB, RANDOM_REPLACE_PROB, DataCollatorForNgramMLM
from .sentence_order import (
    CHUNK_FEATURES,
    MIN_SEQ_LENGTH,
    SentenceOrderEpochCallback,
    SentenceOrderPairs,
    StreamedSentenceOrderPairs,
    build_sop_chunks,
    build_sop_dataset,
    check_max_seq_length,
)
from .tnf_data import RareWordFinder
from .tokenization import WORD_START_MARKERS

__all__ = [
    "CHUNK_FEATURES",
    "DOCUMENT_COLUMN",
    "DOCUMENT_FEATURES",
    "MASK_REPLACE_PROB",
    "MIN_SEQ_LENGTH",
    "RANDOM_REPLACE_PROB",
    "WORD_START_MARKERS",
    "DataCollatorForNgramMLM",
    "RareWordFinder",
    "SentenceOrderEpochCallback",
    "SentenceOrderPairs",
    "StreamedSentenceOrderPairs",
    "build_sop_chunks",
    "build_sop_dataset",
    "check_max_seq_length",
    "heading_level",
    "load_documents",
    "read_documents",
]
