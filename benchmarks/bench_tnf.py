"""Training-step time of `litebert-pretrain` with TNF against the same run without it.

Runs the pretraining script several times on the same corpus slice and shape, alternating without/with `--tnf`, and
prints each run's training seconds per step and the ratio of the medians (TNF / plain; 1.10 would be 10% slower).
Everything TNF adds is timed: occurrence marking in the collator, note mixing and the note update.

    python benchmarks/bench_tnf.py --corpus ../shared/data/wikitext-2/train.txt --lines 4000 --steps 100 --rounds 2
"""

import argparse
import statistics
import tempfile
from pathlib import Path

from litebert.cli.pretrain import parse_arguments, run

SHAPE = "hidden_size=256,num_attention_heads=4,intermediate_size=1024,num_hidden_layers=4,embedding_size=128"


def corpus_slice(corpus: str, lines: int, folder: Path) -> Path:
    path = folder / "corpus.txt"
    with open(corpus, encoding="utf-8") as source:
        path.write_text("".join(line for _, line in zip(range(lines), source)), encoding="utf-8")
    return path


def seconds_per_step(corpus: Path, folder: Path, steps: int, tnf: bool, tokenizer: Path | None) -> float:
    argv = [
        "--output_dir", str(folder), "--train_file", str(corpus), "--config_overrides", SHAPE,
        "--tokenizer_vocab_size", "8000", "--max_seq_length", "128", "--per_device_train_batch_size", "16",
        "--max_steps", str(steps), "--do_train", "--report_to", "none", "--use_cpu", "true",
        "--save_strategy", "no", "--logging_steps", str(steps), "--disable_tqdm", "true", "--auto_resume", "false",
    ]
    if tokenizer is not None:
        argv += ["--tokenizer_name", str(tokenizer)]
    if tnf:
        argv += ["--tnf", "--tnf_min_count", "3", "--tnf_max_count", "50"]
    results = run(*parse_arguments(argv))
    return results["train_runtime"] / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_corpus = Path(__file__).resolve().parents[2] / "shared/data/wikitext-2/train.txt"
    parser.add_argument("--corpus", default=str(default_corpus))
    parser.add_argument("--lines", type=int, default=4000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        corpus = corpus_slice(args.corpus, args.lines, work)
        seconds_per_step(corpus, work / "tokenizer", 1, False, None)  # trains and saves the shared tokenizer
        times = {False: [], True: []}
        for round_index in range(args.rounds):
            for tnf in (False, True):
                folder = work / f"run-{round_index}-{'tnf' if tnf else 'plain'}"
                times[tnf].append(seconds_per_step(corpus, folder, args.steps, tnf, work / "tokenizer"))
    print(f"\n{SHAPE}, 128-token pairs, batch 16, {args.steps} steps per run, {args.rounds} rounds")
    print(f"{'run':>6} {'plain s/step':>13} {'TNF s/step':>11}")
    for index, (plain, tnf) in enumerate(zip(times[False], times[True])):
        print(f"{index:>6} {plain:>13.3f} {tnf:>11.3f}")
    plain, tnf = statistics.median(times[False]), statistics.median(times[True])
    print(f"median {plain:>13.3f} {tnf:>11.3f}   TNF / plain = {tnf / plain:.3f}")


if __name__ == "__main__":
    main()
