"""`litebert-convert SRC DST`: convert a local transformers ALBERT or BERT checkpoint folder into a LiteBERT folder.

The head is taken from the checkpoint's `architectures` (e.g. `BertForMaskedLM`); the tokenizer, when the folder has
one, is copied along. The result loads with `AutoModel*.from_pretrained(DST)` (and `trust_remote_code=True` without
the package). DST must be a new or empty folder outside SRC: writing into SRC or over existing files needs
--overwrite.
"""

import argparse
from collections.abc import Callable
from pathlib import Path

import transformers
from transformers import AutoConfig, AutoTokenizer, PreTrainedModel

from ..convert import CONVERTERS, HEAD_CLASSES, litebert_class
from .checkpoints import model_folder_problem
from .common import ArgumentParser, command


def source_head(source: Path) -> tuple[type[PreTrainedModel], Callable[[PreTrainedModel], PreTrainedModel]]:
    """(transformers class named in the config, converter) of the ALBERT/BERT checkpoint in `source`, checked before
    any weight is loaded."""
    if not (source / "config.json").is_file():
        raise SystemExit(f"{source} is not a checkpoint folder: it has no config.json.")
    problem = model_folder_problem(source)
    if problem:
        raise SystemExit(f"{source} cannot be loaded: {problem}.")
    config = AutoConfig.from_pretrained(source)
    if config.model_type not in CONVERTERS:
        raise SystemExit(
            f"{source} holds a {config.model_type!r} model; litebert-convert handles {', '.join(CONVERTERS)}."
        )
    family, converter = CONVERTERS[config.model_type]
    architecture = (config.architectures or [family + "Model"])[0]
    if litebert_class(architecture, family) is None:
        raise SystemExit(f"{architecture} has no LiteBERT counterpart; supported heads: {', '.join(HEAD_CLASSES)}.")
    return getattr(transformers, architecture), converter


def check_destination(source: Path, destination: Path) -> None:
    """Refuse (SystemExit) a destination that is the source folder, lies inside it, or already holds files."""
    source_folder, destination_folder = source.resolve(), destination.resolve()
    if destination_folder == source_folder:
        raise SystemExit(f"{destination} is the source folder: the conversion would overwrite the checkpoint it "
                         "converts. Choose another destination (or pass --overwrite to replace it).")
    if source_folder in destination_folder.parents:
        raise SystemExit(f"{destination} lies inside the source folder {source}, which would change. Choose a "
                         "destination outside it (or pass --overwrite).")
    if destination.is_file():
        raise SystemExit(f"{destination} is a file, not a folder: choose a new destination folder.")
    existing = sorted(path.name for path in destination.iterdir()) if destination.is_dir() else []
    if existing:
        raise SystemExit(f"{destination} already holds files ({', '.join(existing[:5])}): choose a new or empty "
                         "destination, or pass --overwrite to write over them.")


def convert_folder(source: str | Path, destination: str | Path, overwrite: bool = False) -> Path:
    """Convert the checkpoint folder `source` into a LiteBERT folder `destination`; without `overwrite`, only into a
    new or empty folder outside `source`."""
    source, destination = Path(source), Path(destination)
    model_class, converter = source_head(source)
    if not overwrite:
        check_destination(source, destination)
    converted = converter(model_class.from_pretrained(source))
    converted.config.name_or_path = str(source)
    converted.save_pretrained(destination)
    if any((source / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt")):
        AutoTokenizer.from_pretrained(source).save_pretrained(destination)
    return destination


@command("litebert-convert")
def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="litebert-convert", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="local folder with a transformers ALBERT or BERT checkpoint")
    parser.add_argument("destination", help="new or empty folder to write the LiteBERT checkpoint to")
    parser.add_argument("--overwrite", action="store_true",
                        help="write even into an existing folder with files, or into the source folder")
    args = parser.parse_args(argv)
    destination = convert_folder(args.source, args.destination, overwrite=args.overwrite)
    print(f"Wrote {destination}: {', '.join(sorted(p.name for p in destination.iterdir()))}")


if __name__ == "__main__":
    main()
