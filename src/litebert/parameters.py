"""Parameter counts of LiteBERT models: unique parameters, and what the same shape would hold without sharing."""

from torch import nn


def _numel(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Counts for a LiteBERT model (any head).

    - `total`: unique parameters (tied weights counted once), what is stored and trained.
    - `embedding`: word, type and position embeddings, their LayerNorm and the E -> H projection (in TUPE mode also
      the positional attention term's embeddings and projections, shared by all layers).
    - `encoder`: the transformer layers' unique parameters.
    - `heads`: pooler and task heads (the tied MLM decoder weight is not counted twice).
    - `effective`: what a model of the same shape without cross-layer sharing would hold, i.e. the parameters
      applied in one forward pass, counted once per application.
    """
    base = model.base_model
    total = _numel(model)
    embedding = _numel(base.embeddings) + (_numel(base.position_bias) if base.position_bias is not None else 0)
    encoder = _numel(base.encoder)
    config = base.config
    applications = config.layers_per_group * config.inner_group_num
    effective_encoder = 0
    for group in base.encoder.groups:
        effective_encoder += sum(_numel(block) for block in group.attention) * applications // len(group.attention)
        feed_forward = sum(_numel(block) for block in group.feed_forward)
        effective_encoder += feed_forward * applications // len(group.feed_forward)
    return {
        "total": total,
        "embedding": embedding,
        "encoder": encoder,
        "heads": total - embedding - encoder,
        "effective": total - encoder + effective_encoder,
    }


def format_parameter_table(rows: dict[str, dict[str, int]]) -> str:
    """A plain-text table of `parameter_counts` results, one row per named model, in millions."""
    columns = ("total", "embedding", "encoder", "heads", "effective")
    name_width = max(len("model"), *(len(name) for name in rows))
    lines = [f"{'model':<{name_width}}  " + "  ".join(f"{column:>10}" for column in columns)]
    for name, counts in rows.items():
        lines.append(f"{name:<{name_width}}  " + "  ".join(f"{counts[c] / 1e6:>9.2f}M" for c in columns))
    return "\n".join(lines)
