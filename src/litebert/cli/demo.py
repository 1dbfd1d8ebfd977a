"""`litebert-demo`: build a small LiteBERT, save it Hub-ready, and reload it in a fresh process without the package.

Runs offline on built-in defaults: `litebert-demo` (or `make demo`).
"""

import argparse
from pathlib import Path

import torch

from .. import PRESETS, LiteBertConfig, LiteBertForMaskedLM, LiteBertModel
from ..parameters import format_parameter_table, parameter_counts
from ..remote_code import run_without_litebert


def preset_parameter_rows() -> dict[str, dict[str, int]]:
    """Parameter counts of every preset, built on the meta device so nothing is allocated."""
    rows = {}
    for name in PRESETS:
        with torch.device("meta"):
            rows[name] = parameter_counts(LiteBertModel(LiteBertConfig.from_preset(name)))
    return rows


def build_demo_model(seed: int) -> LiteBertForMaskedLM:
    torch.manual_seed(seed)
    config = LiteBertConfig.from_preset(
        "albert-base", hidden_size=256, num_attention_heads=4, intermediate_size=1024, num_hidden_layers=6
    )
    return LiteBertForMaskedLM(config).eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="demo-output", help="where the Hub-ready folder is written")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    print("Parameters of the published shapes (V = 30000):")
    print(format_parameter_table(preset_parameter_rows()))

    model = build_demo_model(args.seed)
    folder = Path(args.output_dir)
    model.save_pretrained(folder)
    print(f"\nSaved a small LiteBERT masked-LM to {folder}/: {', '.join(sorted(p.name for p in folder.iterdir()))}")
    print(format_parameter_table({"demo model": parameter_counts(model)}))

    generator = torch.Generator().manual_seed(args.seed)
    input_ids = torch.randint(5, model.config.vocab_size, (2, 16), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 10:] = 0
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
    with torch.no_grad():
        expected = model.litebert(**inputs).last_hidden_state
    loaded_class, reloaded = run_without_litebert(folder, "AutoModel", inputs)
    difference = (expected - reloaded).abs().max().item()
    print(f"\nReloaded in a fresh process without litebert: AutoModel -> {loaded_class}")
    print(f"max |hidden states (this process) - hidden states (fresh process)| = {difference:.3g}")
    if difference > 1e-5:
        raise SystemExit("The reloaded model does not reproduce the saved one.")


if __name__ == "__main__":
    main()
