"""`litebert-export FOLDER OUT`: export a saved LiteBERT model to ONNX, checked with onnxruntime.

    litebert-export runs/sst2 runs/sst2-onnx                    # model.onnx, config.json, the tokenizer
    litebert-export runs/sst2 runs/sst2-onnx --quantize int8    # and model.int8.onnx

Any head exports (a LiteBertForPreTraining folder as LiteBertForMaskedLM), in every position mode, with dynamic batch
and sequence axes. Before reporting success, onnxruntime runs the graph on inputs of two other shapes, with padding,
and its outputs must lie within 1e-4 of PyTorch's (the largest difference per output is printed); --quantize int8
also writes onnxruntime's dynamic int8 quantization and prints its difference. OUT then holds everything
`litebert.onnx.OnnxClassifier` / `OnnxQuestionAnswerer` need. OUT must be a new or empty folder (or pass
--overwrite), and not FOLDER itself. Needs `pip install 'litebert[onnx]'`.
"""

import argparse
from pathlib import Path

from ..onnx import DEFAULT_OPSET, EXPORTABLE_ATTENTION, OPSETS, QUANTIZATIONS, check_export_options, export
from .checkpoints import model_folder_problem
from .common import ArgumentParser, command


def check_model_folder(folder: Path) -> None:
    """FOLDER exists and holds a readable config and safetensors weights."""
    if not folder.is_dir():
        raise SystemExit(f"{folder}: no such folder.")
    problem = model_folder_problem(folder)
    if problem:
        raise SystemExit(f"{folder} cannot be exported: {problem}.")


def check_out_dir(folder: Path, out: Path, overwrite: bool) -> None:
    """OUT is not FOLDER (the export writes its own config.json and tokenizer) and, without --overwrite, is new or
    empty."""
    if out.resolve() == folder.resolve():
        raise SystemExit(f"{out} is the model folder itself: the export writes its own config.json and tokenizer "
                         "there. Choose another folder for OUT.")
    if out.is_file():
        raise SystemExit(f"{out} is a file, not a folder: choose a new folder for OUT.")
    existing = sorted(path.name for path in out.iterdir()) if out.is_dir() else []
    if existing and not overwrite:
        raise SystemExit(f"{out} already holds files ({', '.join(existing[:5])}): choose a new or empty folder, or "
                         "pass --overwrite to write over them.")


@command("litebert-export")
def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="litebert-export", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a saved LiteBERT model folder (any head)")
    parser.add_argument("out", type=Path, help="new or empty folder for the ONNX model, its config and tokenizer")
    parser.add_argument("--quantize", metavar="|".join(QUANTIZATIONS),
                        help="also write model.int8.onnx, onnxruntime's dynamic int8 quantization")
    parser.add_argument("--opset", type=int,
                        help=f"ONNX opset, {OPSETS.start} to {OPSETS.stop - 1} (default: {DEFAULT_OPSET}, which needs "
                             "onnxruntime 1.23 or newer to run)")
    parser.add_argument("--attn_implementation", default="sdpa",
                        help=f"attention backend to trace: {' or '.join(EXPORTABLE_ATTENTION)} (default: sdpa; "
                             "flex_attention cannot be traced)")
    parser.add_argument("--overwrite", action="store_true", help="write into an OUT that already holds files")
    args = parser.parse_args(argv)
    check_export_options(args.opset, args.quantize, args.attn_implementation)
    check_model_folder(args.folder)
    check_out_dir(args.folder, args.out, args.overwrite)
    try:
        report = export(args.folder, args.out, opset=args.opset, quantize=args.quantize,
                        attn_implementation=args.attn_implementation)
    except ImportError as error:  # onnx, onnxscript or onnxruntime missing: the message names the install command
        raise SystemExit(str(error)) from None
    print(f"Wrote {report.folder} ({report.model_class}, opset {report.opset}): "
          f"{', '.join(sorted(path.name for path in report.folder.iterdir()))}")


if __name__ == "__main__":
    main()
