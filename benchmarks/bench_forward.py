"""Forward-pass time of LiteBERT against transformers' AlbertModel, and of TUPE against absolute positions.

Part 1 ("albert"): LiteBertModel and AlbertModel holding the same (converted) weights, timed in the same run,
interleaved, for every attention backend; ratio = AlbertModel time / LiteBertModel time (above 1.0: LiteBERT is
faster); the "best vs best" line compares each model's fastest backend.

Part 2 ("tupe"): LiteBertModel with absolute positions, TUPE-A and TUPE-R at the same shape, interleaved, per
backend; ratio = TUPE time / absolute time (1.10 would be 10% slower).

Padded batches and pretraining steps: `bench_padding_free.py`.

    python benchmarks/bench_forward.py                       # albert-base shape, fp32, batch 8 and 32 x 128 tokens
    python benchmarks/bench_forward.py --parts tupe --batch_sizes 32 --repeats 5
"""

import argparse
import statistics
import time

import torch
from transformers import AlbertConfig, AlbertModel

from litebert import LiteBertConfig, LiteBertModel
from litebert.convert import albert_to_litebert


def albert_reference(preset: str, device: str, model_class: type = AlbertModel):
    """transformers' ALBERT at a LiteBERT preset's shape, seeded, in eval mode."""
    shape = LiteBertConfig.from_preset(preset)
    config = AlbertConfig(
        vocab_size=shape.vocab_size,
        embedding_size=shape.embedding_size,
        hidden_size=shape.hidden_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        intermediate_size=shape.intermediate_size,
    )
    torch.manual_seed(0)
    return model_class(config).eval().to(device)


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


def interleaved_times(models: list, seconds_of, repeats: int, warm_up: bool = True) -> list[list[float]]:
    """`seconds_of(model)` for every model in turn, `repeats` times (after one warm-up round): one list per model."""
    if warm_up:
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="albert-base")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--seq_len", type=int, default=128)
    parser.add_argument("--backends", nargs="+", default=["eager", "sdpa", "flex_attention"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--parts", nargs="+", choices=["albert", "tupe"], default=["albert", "tupe"])
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.seq_len} tokens per sequence")
    if "albert" in args.parts:
        bench_against_albert(args)
    if "tupe" in args.parts:
        bench_tupe(args)


if __name__ == "__main__":
    main()
