"""Training-step time of ELECTRA and MC-BERT pretraining against MLM + SOP at the same main-model shape.

One optimizer step (loss, backward, AdamW step) on 32 sequences of 128 tokens with 15% of the positions masked, as
`litebert-pretrain --objective mlm|electra|mc` takes it: the same main model (same config, same seed) with the MLM
head, with ELECTRA's generator and discriminator head, or with MC-BERT's meta controller and cloze head (generator at
the config's `generator_hidden_fraction`, 1/3 by default; K = 9 candidates). Steps are interleaved across the three
models; prints tokens/s and each objective's step time over the MLM step time, medians over --repeats with the
(min-max) spread. Run with nothing else on the machine.

    python benchmarks/bench_objectives.py                               # study and albert-base shapes, 5 repeats
    python benchmarks/bench_objectives.py --shapes study --repeats 10
"""

import argparse

import torch

from bench_forward import interleaved_times
from bench_padding_free import pretraining_batch, spread, training_step_seconds
from litebert import LiteBertConfig
from litebert.cli.objectives import OBJECTIVES

# "study": the small shape of the pretraining-efficiency study (benchmarks/pretraining_study.py); "albert-base": the
# published ALBERT-base shape with a 30,000-piece vocabulary.
SHAPES = {
    "study": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
                  embedding_size=128, vocab_size=8000, sharing="none"),
    "albert-base": dict(vocab_size=30000),
}


def build_models(shape: str, device: str) -> dict:
    config = LiteBertConfig.from_preset("albert-base", sparse_prediction=True, special_token_ids=[0, 1, 2, 3, 4],
                                        **SHAPES[shape])
    models = {}
    for objective, spec in OBJECTIVES.items():
        torch.manual_seed(0)
        models[objective] = spec.model_class(LiteBertConfig(**config.to_dict())).to(device).train()
    return models


def bench_shape(shape: str, device: str, repeats: int) -> None:
    models = build_models(shape, device)
    batch = pretraining_batch(32, 128, models["mlm"].config.vocab_size, device)
    optimizers = {name: torch.optim.AdamW(model.parameters(), lr=1e-5) for name, model in models.items()}
    times = interleaved_times(list(models), lambda name: training_step_seconds(models[name], optimizers[name], batch,
                                                                               device), repeats)
    seconds = dict(zip(models, times))
    tokens = batch["input_ids"].numel()
    generator = models["electra"].generator.config
    print(f"\n{shape} shape (H={models['mlm'].config.hidden_size}, {models['mlm'].config.num_hidden_layers} layers, "
          f"V={models['mlm'].config.vocab_size}; generator H={generator.hidden_size}, "
          f"{generator.num_hidden_layers} layers), 32 x 128 tokens, one training step")
    for name, model_seconds in seconds.items():
        parameters = sum(parameter.numel() for parameter in models[name].parameters())
        ratio = spread([a / b for a, b in zip(model_seconds, seconds["mlm"])])
        print(f"  {name:>8}  parameters {parameters / 1e6:6.2f} M  step s {spread(model_seconds, 3)}  "
              f"tokens/s {spread([tokens / s for s in model_seconds], 0)}  step time / mlm {ratio}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    for shape in args.shapes:
        bench_shape(shape, args.device, args.repeats)


if __name__ == "__main__":
    main()
