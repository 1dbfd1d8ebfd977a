"""Pretraining documents: text files or a `datasets` text column in, documents out, each a list of lines.

`load_documents` gives a `datasets.Dataset` (or `IterableDataset` when streaming), one row per document, column
"lines" (list of str); `read_documents` streams the documents of text files as plain lists. WikiText files are split
at their " = Title = " headings, other text at blank lines. What comes next: `litebert.sentence_order` packs the
documents into sentence-order pairs.

Example:
    >>> documents = load_documents(train_files=["wiki.train.txt"])
    >>> documents[0]["lines"][:1]
    ['Senjō no Valkyria 3 : <unk> Chronicles ( Japanese : ...']
"""

import hashlib
import itertools
import logging
import os
from collections.abc import Generator, Iterable, Iterator

from datasets import Dataset, Features, IterableDataset, Sequence, Value, load_dataset
from datasets.exceptions import DatasetGenerationError

from .tasks.io import DataFormatError
from .tokenization import utf8_error

logger = logging.getLogger(__name__)

DOCUMENT_COLUMN = "lines"
DOCUMENT_FEATURES = Features({DOCUMENT_COLUMN: Sequence(Value("string"))})


def heading_level(line: str) -> int:
    """WikiText heading level: 1 for " = Title = ", 2 for " = = Section = = ", 0 for text.

    Example:
        >>> heading_level(" = Valkyria Chronicles III = "), heading_level(" = = Plot = = ")
        (1, 2)
    """
    words = line.split()
    if len(words) < 3 or words[0] != "=" or words[-1] != "=":
        return 0
    return next((i for i, word in enumerate(words) if word != "="), 0)


def _wikitext_documents(lines: Iterable[str]) -> Iterator[list[str]]:
    """A level-1 heading starts a new document; headings and blank lines are dropped."""
    document = []
    for line in lines:
        level = heading_level(line)
        if level == 1:
            if document:
                yield document
            document = []
        elif level == 0 and line.strip():
            document.append(line.strip())
    if document:
        yield document


def _blank_line_documents(lines: Iterable[str]) -> Iterator[list[str]]:
    """One sentence (or paragraph) per line, documents separated by blank lines."""
    document = []
    for line in lines:
        if line.strip():
            document.append(line.strip())
        elif document:
            yield document
            document = []
    if document:
        yield document


def _is_wikitext(lines: Iterable[str]) -> bool:
    """A text whose first non-blank line is a " = Title = " heading is read as WikiText."""
    first_text = next((line for line in lines if line.strip()), "")
    return heading_level(first_text) == 1


def _file_documents(path: str) -> Generator[list[str], None, None]:
    try:
        with open(path, encoding="utf-8") as f:
            wikitext = _is_wikitext(f)
        with open(path, encoding="utf-8") as f:
            yield from (_wikitext_documents(f) if wikitext else _blank_line_documents(f))
    except UnicodeDecodeError as error:  # its position counts from the start of a read buffer, not of the file
        raise (utf8_error(path) or DataFormatError(path, "", "not UTF-8 text")) from error


def _text_files(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[str]:
    """Validate `paths` (one path or a list): every file exists, and some file has text."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [os.fspath(path) for path in paths]
    if not paths:
        raise ValueError("no text files given")
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"text file not found: {path!r}")
    empty = [path for path in paths if not _has_document(path)]
    if len(empty) == len(paths):
        raise ValueError(f"empty corpus: no text found in {', '.join(empty)}")
    if empty:
        logger.warning("no text found in %s; skipping", ", ".join(empty))
    return paths


def _has_document(path: str) -> bool:
    return not _is_empty(_file_documents(path))


def _is_empty(documents: Generator[object, None, None]) -> bool:
    """Whether a generator of documents yields none (it is read up to its first document only)."""
    found = next(documents, None) is not None
    documents.close()
    return not found


def read_documents(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> Iterator[list[str]]:
    """Stream the documents of text files, each a list of non-blank lines.

    Two layouts are recognised per file:
    - WikiText: the first non-blank line is a " = Title = " heading. Each such
      heading (exactly one "=" on each side) starts a document; sub-headings
      (" = = Section = = ") and blank lines are dropped, not document breaks.
    - Otherwise, blank lines separate documents (BERT's pretraining text layout).

    Files are checked before anything is read: a missing file raises
    FileNotFoundError naming it; files with no text at all raise ValueError.
    A file that is not UTF-8 raises DataFormatError naming the line and byte
    offset of its first bad byte.

    Example:
        >>> docs = read_documents(["wiki.train.txt"])
        >>> next(docs)[:1]
        ['Senjō no Valkyria 3 : <unk> Chronicles ( Japanese : ...']
    """
    paths = _text_files(paths)
    return (document for path in paths for document in _file_documents(path))


def _documents_from_files(paths: list[str]) -> Iterator[dict[str, list[str]]]:
    for path in paths:
        for document in _file_documents(path):
            yield {DOCUMENT_COLUMN: document}


def _documents_from_rows(
    rows: Dataset | IterableDataset, text_column: str
) -> Generator[dict[str, list[str]], None, None]:
    """Rows of a `datasets` text column: WikiText lines when the first text is a
    " = Title = " heading (as on the Hub's "wikitext"), otherwise one document per row."""
    texts = (row[text_column] for row in rows)
    leading = []
    for text in texts:  # look ahead to the first non-blank text to pick the layout
        leading.append(text)
        if text.strip():
            break
    texts = itertools.chain(leading, texts)
    if _is_wikitext(leading):
        documents = _wikitext_documents(texts)
    else:
        documents = ([line.strip() for line in text.splitlines() if line.strip()] for text in texts)
    for document in documents:
        if document:
            yield {DOCUMENT_COLUMN: document}


def _fingerprint(*parts: object) -> str:
    """Cache key of a documents dataset built by `load_documents`."""
    return hashlib.sha256(repr(("litebert-documents", parts)).encode()).hexdigest()[:32]


def _files_fingerprint(paths: list[str]) -> str:
    # Keyed on path, size and modification time, so an edited file is read again, not taken from the cache.
    return _fingerprint([(os.path.abspath(path), os.path.getsize(path), os.stat(path).st_mtime_ns) for path in paths])


def _load_text_dataset(
    name: str, config: str | None, split: str, streaming: bool, text_column: str
) -> Dataset | IterableDataset:
    """The rows of a `datasets` dataset, checked to have `text_column` and some text in it."""
    where = f"dataset {name!r} (config {config!r}, split {split!r})"
    try:
        rows = load_dataset(name, config, split=split, streaming=streaming)
        if rows.column_names is not None and text_column not in rows.column_names:
            raise ValueError(f"{where} has no column {text_column!r}; its columns are {rows.column_names}")
        empty = _is_empty(_documents_from_rows(rows, text_column))  # a streamed dataset is first read here
    except (ConnectionError, FileNotFoundError) as error:
        raise OSError(
            f"could not load {where}: {error}. "
            "Without network access to the Hugging Face Hub, pass local text files with train_files=..."
        ) from error
    if empty:
        raise ValueError(f"empty corpus: {where} has no text in column {text_column!r}")
    return rows


def load_documents(
    train_files: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | None = None,
    dataset_name: str | None = None,
    dataset_config: str | None = None,
    text_column: str = "text",
    streaming: bool = False,
    split: str = "train",
) -> Dataset | IterableDataset:
    """Documents as a `datasets.Dataset` (or `IterableDataset` when streaming), one row
    per document, column "lines" holding its non-blank lines.

    Give either local text files (`train_files`, layouts as in `read_documents`) or a
    `datasets` name whose `text_column` holds the text: each row is a document split
    into lines at newlines, except WikiText-style rows (one line per row, the first
    text a " = Title = " heading), which are grouped by title.

    `split` picks the split of a `datasets` dataset. A missing file, empty corpus or
    file that is not UTF-8 raises as in `read_documents`; a dataset that cannot be
    loaded (e.g. a Hub name offline) raises OSError saying so, and one without any
    text ValueError.

    Example:
        >>> documents = load_documents(train_files=["wiki.train.txt", "wiki.valid.txt"])
        >>> documents = load_documents(dataset_name="wikitext", dataset_config="wikitext-103-raw-v1")
    """
    if (train_files is None) == (dataset_name is None):
        raise ValueError("pass exactly one of train_files (local text files) or dataset_name")
    if train_files is not None:
        paths = _text_files(train_files)
        generator, gen_kwargs, fingerprint = _documents_from_files, {"paths": paths}, _files_fingerprint(paths)
    else:
        rows = _load_text_dataset(dataset_name, dataset_config, split, streaming, text_column)
        generator, gen_kwargs = _documents_from_rows, {"rows": rows, "text_column": text_column}
        fingerprint = None if streaming else _fingerprint(rows._fingerprint, text_column)
    if streaming:
        return IterableDataset.from_generator(generator, features=DOCUMENT_FEATURES, gen_kwargs=gen_kwargs)
    try:
        return Dataset.from_generator(
            generator, features=DOCUMENT_FEATURES, gen_kwargs=gen_kwargs, fingerprint=fingerprint
        )
    except DatasetGenerationError as error:  # datasets wraps what the generator raised: pass a file error on as is
        if isinstance(error.__cause__, DataFormatError):
            raise error.__cause__ from None
        raise
