"""`litebert-convert SRC DST`: convert a local transformers ALBERT or BERT checkpoint folder into a LiteBERT folder.

The head is taken from the checkpoint's `architectures` (e.g. `BertForMaskedLM`); the tokenizer, when the folder has
one, is copied along. The result loads with `AutoModel*.from_pretrained(DST)` (and `trust_remote_code=True` without
the package).
"""

import argparse
from pathlib import Path

import transformers
from transformers import AutoConfig, AutoTokenizer

from ..convert import HEAD_CLASSES, albert_to_litebert, bert_to_litebert

CONVERTERS = {"albert": ("Albert", albert_to_litebert), "bert": ("Bert", bert_to_litebert)}


def load_source_model(source: Path):
    """Load the ALBERT/BERT checkpoint in `source` with the head named in its config."""
    if not (source / "config.json").is_file():
        raise SystemExit(f"{source} is not a checkpoint folder: it has no config.json.")
    config = AutoConfig.from_pretrained(source)
    if config.model_type not in CONVERTERS:
        raise SystemExit(
            f"{source} holds a {config.model_type!r} model; litebert-convert handles {', '.join(CONVERTERS)}."
        )
    family, converter = CONVERTERS[config.model_type]
    architecture = (config.architectures or [family + "Model"])[0]
    head = architecture[len(family) :]
    if head not in HEAD_CLASSES:
        raise SystemExit(f"{architecture} has no LiteBERT counterpart; supported heads: {', '.join(HEAD_CLASSES)}.")
    model = getattr(transformers, architecture).from_pretrained(source)
    return model, converter


def convert_folder(source: str | Path, destination: str | Path) -> Path:
    source, destination = Path(source), Path(destination)
    model, converter = load_source_model(source)
    converted = converter(model)
    converted.config.name_or_path = str(source)
    converted.save_pretrained(destination)
    if any((source / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt")):
        AutoTokenizer.from_pretrained(source).save_pretrained(destination)
    return destination


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="local folder with a transformers ALBERT or BERT checkpoint")
    parser.add_argument("destination", help="folder to write the LiteBERT checkpoint to")
    args = parser.parse_args(argv)
    destination = convert_folder(args.source, args.destination)
    print(f"Wrote {destination}: {', '.join(sorted(p.name for p in destination.iterdir()))}")


if __name__ == "__main__":
    main()
