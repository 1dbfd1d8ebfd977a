"""The built-in default pretraining corpus: English docstrings of the Python installation, gathered at run time.

Every Python installation carries real English prose: the docstrings of its standard library and installed packages
(module, class and function documentation). `write_docstring_corpus` reads them with `ast` (nothing is imported or
executed), keeps prose paragraphs (no doctest lines, no code, at least a few words), removes duplicates, and writes
one document per docstring, documents separated by blank lines — the format `litebert-pretrain --train_file` reads.
The text differs slightly between machines with different packages installed; for your own work, point
`--train_file`/`--dataset_name` at your corpus.
"""

import ast
import hashlib
import re
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

MIN_WORDS_PER_PARAGRAPH = 6
MIN_LETTER_FRACTION = 0.7  # of non-space characters; code and tables fall below it
_CODE_MARKERS = (">>>", "...", "$ ", "#", "|", "+-", "==", "::", "--", "*")


def source_roots() -> list[Path]:
    """The standard library and the site-packages folders of the running interpreter."""
    paths = sysconfig.get_paths()
    roots = [Path(paths["stdlib"]), Path(paths["purelib"]), Path(paths["platlib"])]
    unique = []
    for root in roots:
        if root.is_dir() and root not in unique:
            unique.append(root)
    return unique


def python_files(roots: list[Path]) -> Iterator[Path]:
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if "test" not in path.parts[-2].lower() and "site-packages" not in path.relative_to(root).parts:
                yield path


def docstrings(path: Path) -> Iterator[str]:
    """Module, class and function docstrings of one source file; files that do not parse are skipped."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, ValueError, OSError, RecursionError):
        return
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            text = ast.get_docstring(node)
            if text:
                yield text


def prose_paragraphs(docstring: str) -> list[str]:
    """The docstring's paragraphs that read as English prose, each joined onto one line."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", docstring):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        if not lines or any(line.startswith(_CODE_MARKERS) for line in lines):
            continue
        paragraph = " ".join(lines)
        characters = paragraph.replace(" ", "")
        letters = sum(character.isalpha() for character in characters)
        if len(paragraph.split()) >= MIN_WORDS_PER_PARAGRAPH and letters >= MIN_LETTER_FRACTION * len(characters):
            paragraphs.append(paragraph)
    return paragraphs


def write_docstring_corpus(path: str | Path, max_megabytes: float = 8.0, roots: list[Path] | None = None) -> dict:
    """Write the docstring corpus to `path`; returns counts (documents, paragraphs, bytes, source files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    limit = int(max_megabytes * 1_000_000)
    seen = set()
    counts = {"documents": 0, "paragraphs": 0, "bytes": 0, "files": 0}
    with path.open("w", encoding="utf-8") as corpus:
        for source in python_files(roots or source_roots()):
            counts["files"] += 1
            for docstring in docstrings(source):
                paragraphs = prose_paragraphs(docstring)
                digest = hashlib.sha1("\n".join(paragraphs).encode()).digest()
                if not paragraphs or digest in seen:
                    continue
                seen.add(digest)
                document = "\n".join(paragraphs) + "\n\n"
                corpus.write(document)
                counts["documents"] += 1
                counts["paragraphs"] += len(paragraphs)
                counts["bytes"] += len(document.encode())
                if counts["bytes"] >= limit:
                    return counts
    if counts["documents"] == 0:
        raise RuntimeError(f"No English docstrings found under {roots or source_roots()} ({sys.executable}).")
    return counts
