"""Plot TUPE's positional attention term of a saved model as one heatmap per head, saved as PNG.

    python benchmarks/plot_position_bias.py path/to/tupe-model --seq_len 64 --output position_bias.png
    python benchmarks/plot_position_bias.py --preset tupe-r-base --output docs/tupe_r_init.png   # untrained preset

The term is what `model.get_position_attention_bias(seq_len)` returns: `[heads, L, L]`, added to the attention
scores of every layer (row i: query position, column j: key position).
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModel  # noqa: E402

from litebert import LiteBertConfig, LiteBertModel  # noqa: E402


def load_model(folder: str | None, preset: str | None):
    if folder:
        return AutoModel.from_pretrained(folder).eval()
    torch.manual_seed(0)
    return LiteBertModel(LiteBertConfig.from_preset(preset)).eval()


def plot_position_bias(bias: torch.Tensor, heads: list[int], title: str, output: str) -> None:
    columns = min(4, len(heads))
    rows = (len(heads) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.0 * rows), squeeze=False)
    for axis in axes.flat[len(heads) :]:
        axis.axis("off")
    for axis, head in zip(axes.flat, heads):
        image = axis.imshow(bias[head].numpy(), cmap="viridis")
        axis.set_title(f"head {head}")
        axis.set_xlabel("key position j")
        axis.set_ylabel("query position i")
        figure.colorbar(image, ax=axis, fraction=0.046)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(output, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", help="a saved LiteBERT folder with position_embedding_type='tupe'")
    parser.add_argument("--preset", default="tupe-r-base", help="used when no folder is given")
    parser.add_argument("--seq_len", type=int, default=64)
    parser.add_argument("--heads", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--output", default="position_bias.png")
    args = parser.parse_args()

    model = load_model(args.model, args.preset)
    with torch.no_grad():
        bias = model.get_position_attention_bias(args.seq_len)
    bad = [head for head in args.heads if not 0 <= head < bias.shape[0]]
    if bad:
        raise SystemExit(f"--heads {bad} out of range: the model has {bias.shape[0]} heads.")
    name = Path(args.model).name if args.model else args.preset
    plot_position_bias(bias, args.heads, f"TUPE positional term: {name}", args.output)
    print(f"Saved {args.output}")


if __name__ == "__main__":
    main()
