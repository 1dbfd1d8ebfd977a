"""Convert transformers ALBERT and BERT models into LiteBERT models with identical outputs.

ALBERT maps one to one (`sharing="all"`, its groups and inner groups kept). BERT becomes `sharing="none"` with
E = H and an identity embedding projection; BERT's next-sentence head becomes the two-way `sop_classifier` (same shape,
the logits are unchanged; fine-tune it before reading it as sentence order).

Example:

```python
>>> from transformers import BertForSequenceClassification
>>> from litebert.convert import bert_to_litebert
>>> lite = bert_to_litebert(BertForSequenceClassification.from_pretrained("path/to/bert"))
```
"""

from collections.abc import Iterable

import torch
import transformers
from transformers import AlbertConfig, BertConfig, PretrainedConfig, PreTrainedModel

from .configuration_litebert import LiteBertConfig
from .modeling_litebert import HEADS, LiteBertModel

# Source class name without its "Albert"/"Bert" prefix (e.g. "ForMaskedLM", "Model") -> LiteBERT class.
HEAD_CLASSES = {model_class.__name__.removeprefix("LiteBert"): model_class for model_class, _, _ in HEADS}

_SHARED_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "max_position_embeddings",
    "type_vocab_size",
    "initializer_range",
    "layer_norm_eps",
    "pad_token_id",
    "id2label",
    "label2id",
    "problem_type",
)


def albert_to_litebert(model: PreTrainedModel) -> PreTrainedModel:
    """The LiteBERT counterpart of a transformers ALBERT model (any head), with the same weights and outputs."""
    _litebert_config(model, AlbertConfig, "Albert")
    config = LiteBertConfig(
        **_common_fields(model.config),
        embedding_size=model.config.embedding_size,
        num_hidden_groups=model.config.num_hidden_groups,
        inner_group_num=model.config.inner_group_num,
        classifier_dropout_prob=model.config.classifier_dropout_prob,
        sharing="all",
    )
    source = model.state_dict()
    sop = source.get("sop_classifier.classifier.weight")
    if sop is not None and sop.shape[0] != 2:
        raise ValueError(
            f"The SOP head has {sop.shape[0]} outputs (ALBERT sizes it by num_labels); sentence order is binary, "
            "LiteBERT's SOP head has 2."
        )
    prefix = "albert." if hasattr(model, "albert") else ""
    target = {}
    target.update(_embeddings(source, prefix + "embeddings."))
    target["embeddings.projection.weight"] = source[prefix + "encoder.embedding_hidden_mapping_in.weight"]
    target["embeddings.projection.bias"] = source[prefix + "encoder.embedding_hidden_mapping_in.bias"]
    for group in range(config.num_hidden_groups):
        for inner in range(config.inner_group_num):
            layer = f"{prefix}encoder.albert_layer_groups.{group}.albert_layers.{inner}."
            block = f"encoder.groups.{group}."
            target.update(
                _attention(source, block + f"attention.{inner}.", layer + "attention.", layer + "attention.")
            )
            target.update(
                _feed_forward(
                    source,
                    block + f"feed_forward.{inner}.",
                    ffn=layer + "ffn",
                    ffn_output=layer + "ffn_output",
                    layer_norm=layer + "full_layer_layer_norm",
                )
            )
    if prefix + "pooler.weight" in source:
        target.update(_copy(source, prefix + "pooler.", "pooler.", ("weight", "bias")))
    # transformers ties the decoder bias to `predictions.bias`; that parameter is the one to read.
    head_renames = {
        "predictions.bias": "predictions.decoder.bias",
        "predictions.decoder.bias": None,
        "predictions.": "predictions.",
        "sop_classifier.": "sop_classifier.",
    }
    return _build(model, "Albert", config, target, source, head_renames, base_prefix=prefix)


def bert_to_litebert(model: PreTrainedModel) -> PreTrainedModel:
    """The LiteBERT counterpart of a transformers BERT encoder (any head), with the same weights and outputs."""
    _litebert_config(model, BertConfig, "Bert")
    if getattr(model.config, "is_decoder", False) or getattr(model.config, "add_cross_attention", False):
        raise ValueError("Only BERT encoders convert: this model is configured as a decoder (is_decoder=True).")
    classifier_dropout = model.config.classifier_dropout
    config = LiteBertConfig(
        **_common_fields(model.config),
        embedding_size=model.config.hidden_size,
        classifier_dropout_prob=model.config.hidden_dropout_prob if classifier_dropout is None else classifier_dropout,
        sharing="none",
        bos_token_id=None,
        eos_token_id=None,
    )
    source = model.state_dict()
    prefix = "bert." if hasattr(model, "bert") else ""
    hidden = config.hidden_size
    target = _embeddings(source, prefix + "embeddings.")
    reference = source[prefix + "embeddings.word_embeddings.weight"]
    target["embeddings.projection.weight"] = torch.eye(hidden, dtype=reference.dtype)
    target["embeddings.projection.bias"] = torch.zeros(hidden, dtype=reference.dtype)
    for index in range(config.num_hidden_layers):
        layer = f"{prefix}encoder.layer.{index}."
        target.update(
            _attention(
                source, f"encoder.groups.0.attention.{index}.", layer + "attention.self.", layer + "attention.output."
            )
        )
        target.update(
            _feed_forward(
                source,
                f"encoder.groups.0.feed_forward.{index}.",
                ffn=layer + "intermediate.dense",
                ffn_output=layer + "output.dense",
                layer_norm=layer + "output.LayerNorm",
            )
        )
    if prefix + "pooler.dense.weight" in source:
        target.update(_copy(source, prefix + "pooler.dense.", "pooler.", ("weight", "bias")))
    head_renames = {
        "cls.predictions.bias": "predictions.decoder.bias",
        "cls.predictions.decoder.bias": None,
        "cls.predictions.transform.dense.": "predictions.dense.",
        "cls.predictions.transform.LayerNorm.": "predictions.LayerNorm.",
        "cls.predictions.decoder.": "predictions.decoder.",
        "cls.seq_relationship.": "sop_classifier.classifier.",
    }
    return _build(model, "Bert", config, target, source, head_renames, base_prefix=prefix)


def _litebert_config(model: PreTrainedModel, config_class: type[PretrainedConfig], family: str) -> None:
    if not isinstance(model, PreTrainedModel) or not isinstance(model.config, config_class):
        raise TypeError(f"Expected a transformers {family} model, got {type(model).__name__}.")
    if litebert_class(type(model).__name__, family) is None:
        raise ValueError(
            f"{type(model).__name__} has no LiteBERT counterpart; supported: "
            + ", ".join(family + name for name in HEAD_CLASSES)
        )
    if getattr(model.config, "position_embedding_type", "absolute") != "absolute":
        raise ValueError(
            f"position_embedding_type={model.config.position_embedding_type!r} cannot be converted; only 'absolute'."
        )


def litebert_class(architecture: str, family: str) -> type[PreTrainedModel] | None:
    """The LiteBERT head that the transformers class named `architecture` (e.g. "BertForMaskedLM", of `family`
    "Bert") converts into; None for a head LiteBERT lacks."""
    return HEAD_CLASSES.get(architecture.removeprefix(family)) if architecture.startswith(family) else None


def source_class(model_type: str, head_class: type[PreTrainedModel]) -> type[PreTrainedModel]:
    """The transformers class of a `model_type` ("albert", "bert") checkpoint that converts into `head_class`."""
    family, _ = CONVERTERS[model_type]
    return getattr(transformers, family + head_class.__name__.removeprefix("LiteBert"))


def _common_fields(source_config: PretrainedConfig) -> dict:
    fields = {name: getattr(source_config, name) for name in _SHARED_FIELDS}
    if source_config.id2label is None:
        fields.pop("id2label")
        fields.pop("label2id")
    fields["num_labels"] = source_config.num_labels
    return fields


def _copy(source: dict, src_prefix: str, dst_prefix: str, names: Iterable[str]) -> dict:
    return {dst_prefix + name: source[src_prefix + name] for name in names}


def _embeddings(source: dict, src: str) -> dict:
    names = (
        "word_embeddings.weight",
        "token_type_embeddings.weight",
        "position_embeddings.weight",
        "LayerNorm.weight",
        "LayerNorm.bias",
    )
    return _copy(source, src, "embeddings.", names)


def _attention(source: dict, dst: str, projections: str, output: str) -> dict:
    """Fuse the separate query/key/value projections into LiteBERT's single QKV projection."""
    qkv = {
        kind: torch.cat([source[f"{projections}{part}.{kind}"] for part in ("query", "key", "value")])
        for kind in ("weight", "bias")
    }
    return {
        dst + "qkv.weight": qkv["weight"],
        dst + "qkv.bias": qkv["bias"],
        **_copy(source, output, dst, ("dense.weight", "dense.bias", "LayerNorm.weight", "LayerNorm.bias")),
    }


def _feed_forward(source: dict, dst: str, ffn: str, ffn_output: str, layer_norm: str) -> dict:
    renames = {"ffn": ffn, "ffn_output": ffn_output, "LayerNorm": layer_norm}
    return {
        f"{dst}{new}.{kind}": source[f"{old}.{kind}"] for new, old in renames.items() for kind in ("weight", "bias")
    }


def _head_state(source: dict, base_prefix: str, head_renames: dict) -> dict:
    """Head weights under LiteBERT names. `head_renames` maps a source name or prefix to the LiteBERT one (first
    match wins; None drops the weight); other heads (classifier, qa_outputs) keep their names."""
    state = {}
    for name, value in source.items():
        if name.startswith(base_prefix):
            continue
        for old, new in head_renames.items():
            if name == old or (old.endswith(".") and name.startswith(old)):
                if new is not None:
                    state[new + name[len(old) :] if old.endswith(".") else new] = value
                break
        else:
            state[name] = value
    return state


def _build(
    model: PreTrainedModel,
    family: str,
    config: LiteBertConfig,
    base_state: dict,
    source: dict,
    head_renames: dict,
    base_prefix: str,
) -> PreTrainedModel:
    """Instantiate the LiteBERT head class and load the converted base and head weights into it."""
    model_class = litebert_class(type(model).__name__, family)
    if model_class is LiteBertModel:
        lite = LiteBertModel(config, add_pooling_layer="pooler.weight" in base_state)
        state = dict(base_state)
    else:
        lite = model_class(config)
        state = {"litebert." + name: value for name, value in base_state.items()}
        state.update(_head_state(source, base_prefix, head_renames))
    try:
        missing, unexpected = lite.load_state_dict(state, strict=False)
    except RuntimeError as error:
        raise ValueError(f"{type(model).__name__} does not fit {model_class.__name__}: {error}") from error
    if missing or unexpected:
        raise ValueError(f"Conversion of {type(model).__name__} left missing={missing}, unexpected={unexpected}.")
    lite.to(next(model.parameters()).dtype)
    return lite.eval() if not model.training else lite


# A transformers checkpoint's model_type -> (the prefix of its class names, its converter).
CONVERTERS = {"albert": ("Albert", albert_to_litebert), "bert": ("Bert", bert_to_litebert)}
