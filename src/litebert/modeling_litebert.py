"""PyTorch LiteBERT: an ALBERT-style encoder with selectable cross-layer sharing.

This file is copied next to saved weights for `trust_remote_code` users, so it imports only torch, transformers and
its sibling configuration module (relatively).
"""

import copy
import math
import os
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import CrossEntropyLoss
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPooling,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.processing_utils import Unpack
from transformers.pytorch_utils import apply_chunking_to_forward
from transformers.utils import ModelOutput, TransformersKwargs
from transformers.utils.generic import can_return_tuple, merge_with_config_defaults
from transformers.utils.output_capturing import capture_outputs

from .configuration_litebert import LiteBertConfig
from .modeling_tnf import LiteBertNoteDictionary


def activation(name: str) -> nn.Module:
    """transformers' activation `name`; `gelu_new` (GELU's tanh approximation written out in Python, ALBERT's default)
    runs as torch's fused tanh-approximate GELU kernel: the same function, one kernel instead of several."""
    return nn.GELU(approximate="tanh") if name == "gelu_new" else ACT2FN[name]


class LiteBertEmbeddings(nn.Module):
    """Factorized embeddings: word (V x E) + token type (+ absolute position), LayerNorm, then a linear map E -> H.

    In TUPE mode no position vector is added here: positions enter through the attention scores only.
    """

    def __init__(self, config: LiteBertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=config.pad_token_id)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.embedding_size)
        self.position_embeddings = None
        if not config.uses_tupe:
            self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.embedding_size)
        self.LayerNorm = nn.LayerNorm(config.embedding_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        # Kept when E == H too, so that ALBERT and BERT checkpoints share one layout.
        self.projection = nn.Linear(config.embedding_size, config.hidden_size)
        self.position_ids = nn.Buffer(torch.arange(config.max_position_embeddings).expand((1, -1)), persistent=False)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        seq_length = inputs_embeds.shape[1]
        if token_type_ids is None:
            token_type_ids = torch.zeros(inputs_embeds.shape[:2], dtype=torch.long, device=inputs_embeds.device)
        embeddings = inputs_embeds + self.token_type_embeddings(token_type_ids)
        if self.position_embeddings is not None:
            if position_ids is None:
                position_ids = self.position_ids[:, :seq_length]
            embeddings = embeddings + self.position_embeddings(position_ids)
        embeddings = self.dropout(self.LayerNorm(embeddings))
        return self.projection(embeddings)


def relative_position_buckets(relative_position: torch.Tensor, num_buckets: int, max_distance: int) -> torch.Tensor:
    """T5-style bidirectional buckets of `relative_position` = j - i.

    Half of the buckets serve each direction. Within a direction, distances below a quarter of `num_buckets` get a
    bucket each; larger ones share logarithmically wider buckets, and distances from `max_distance` on share the last.
    """
    per_direction = num_buckets // 2
    exact = per_direction // 2
    direction_offset = (relative_position > 0).long() * per_direction
    distance = relative_position.abs()
    log_ratio = torch.log(distance.clamp(min=1).float() / exact) / math.log(max_distance / exact)
    far_bucket = (exact + (log_ratio * (per_direction - exact)).long()).clamp(max=per_direction - 1)
    return direction_offset + torch.where(distance < exact, distance, far_bucket)


class LiteBertPositionBias(nn.Module):
    """TUPE's positional attention term, an additive `[heads, L, L]` bias shared by every layer.

    bias_h(i, j) = (LN(p_i) U_q)_h . (LN(p_j) U_k)_h / sqrt(2d), plus a bucketed relative bias b_h(j - i) for TUPE-R.
    With `tupe_untie_cls`, row 0 becomes theta1_h and column 0 (rows >= 1) theta2_h; as in the paper's appendix, each
    theta is a learned vector passed through LN, U_q and U_k like a position, so it has the scale of the other terms.
    """

    def __init__(self, config: LiteBertConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_size = config.attention_head_size
        self.scaling = (2 * self.head_size) ** -0.5
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        # row 0: [CLS] attending to others (theta1); row 1: others attending to [CLS] (theta2)
        self.cls_embeddings = nn.Embedding(2, config.hidden_size) if config.tupe_untie_cls else None
        self.num_buckets = config.relative_attention_num_buckets
        self.max_distance = config.relative_attention_max_distance
        self.relative_attention_bias = nn.Embedding(self.num_buckets, self.num_heads) if self.num_buckets else None

    def split_heads(self, projected: torch.Tensor) -> torch.Tensor:
        return projected.view(projected.shape[0], self.num_heads, self.head_size).transpose(0, 1)

    def forward(self, seq_length: int) -> torch.Tensor:
        positions = self.LayerNorm(self.position_embeddings.weight[:seq_length])
        query, key = self.split_heads(self.query(positions)), self.split_heads(self.key(positions))
        bias = torch.matmul(query, key.transpose(1, 2)) * self.scaling
        index = torch.arange(seq_length, device=bias.device)
        if self.relative_attention_bias is not None:
            buckets = relative_position_buckets(index[None, :] - index[:, None], self.num_buckets, self.max_distance)
            bias = bias + self.relative_attention_bias(buckets).permute(2, 0, 1)
        if self.cls_embeddings is not None:
            cls = self.LayerNorm(self.cls_embeddings.weight)
            theta = (self.split_heads(self.query(cls)) * self.split_heads(self.key(cls))).sum(-1) * self.scaling
            cls_row, cls_column = theta[:, 0, None, None], theta[:, 1, None, None]
            bias = torch.where(index[None, :] == 0, cls_column, bias)
            bias = torch.where(index[:, None] == 0, cls_row, bias)
        return bias


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    position_bias: torch.Tensor | None = None,
    **kwargs,
):
    """Reference attention: softmax(q k^T * scaling + mask [+ position_bias]) v; the mask is additive."""
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    if position_bias is not None:
        attn_weights = attn_weights + position_bias
    attn_weights = nn.functional.softmax(attn_weights, dim=-1)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()
    return attn_output, attn_weights


class LiteBertAttention(nn.Module):
    """Multi-head self-attention block with a fused QKV projection, residual connection and LayerNorm (post-LN)."""

    def __init__(self, config: LiteBertConfig):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_size = config.attention_head_size
        # TUPE splits each score into a word and a position term and scales both by 1/sqrt(2d).
        self.scaling = (self.head_size * (2 if config.uses_tupe else 1)) ** -0.5
        self.is_causal = False
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.output_dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        packing: "TokenPacking | None" = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        qkv = self.qkv(hidden_states)
        if packing is not None:  # attention works per sequence: Q/K/V go back to the padded layout for it
            qkv = packing.unpack(qkv)
        batch_size, seq_length, _ = qkv.shape
        qkv = qkv.view(batch_size, seq_length, 3, self.num_heads, self.head_size)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.config.attention_probs_dropout_prob if self.training else 0.0,
            scaling=self.scaling,
            **kwargs,
        )
        if torch.compiler.is_exporting():
            # torch.export's fake strides for sdpa with a float mask claim a layout the decomposed kernel does not
            # produce, so a plain reshape turns into an invalid view there; an explicit copy keeps it valid
            attn_output = attn_output.clone(memory_format=torch.contiguous_format)
        attn_output = attn_output.reshape(batch_size, seq_length, -1)
        if packing is not None:
            attn_output = packing.pack(attn_output)
        attn_output = self.output_dropout(self.dense(attn_output))
        return self.LayerNorm(hidden_states + attn_output), attn_weights


class LiteBertFeedForward(nn.Module):
    """Position-wise feed-forward block with residual connection and LayerNorm (post-LN)."""

    def __init__(self, config: LiteBertConfig):
        super().__init__()
        self.chunk_size_feed_forward = config.chunk_size_feed_forward
        self.ffn = nn.Linear(config.hidden_size, config.intermediate_size)
        self.ffn_output = nn.Linear(config.intermediate_size, config.hidden_size)
        self.activation = activation(config.hidden_act)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        sequence_dim = hidden_states.dim() - 2  # [batch, length, hidden], or [tokens, hidden] when packed
        output = apply_chunking_to_forward(
            self.feed_forward_chunk, self.chunk_size_feed_forward, sequence_dim, hidden_states
        )
        return self.LayerNorm(hidden_states + output)

    def feed_forward_chunk(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.ffn_output(self.activation(self.ffn(hidden_states))))


class LiteBertLayer(GradientCheckpointingLayer):
    """One encoder layer: an attention block, then a feed-forward block.

    The layer owns no parameters: the blocks are handed in by the encoder from their layer group, so a shared block is
    applied by several layers without the same module appearing at several paths of the model.
    """

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention: LiteBertAttention,
        feed_forward: LiteBertFeedForward,
        attention_mask: torch.Tensor | None = None,
        position_bias: torch.Tensor | None = None,
        packing: "TokenPacking | None" = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> torch.Tensor:
        if position_bias is not None:
            kwargs["position_bias"] = position_bias
        hidden_states, _ = attention(hidden_states, attention_mask, packing, **kwargs)
        return feed_forward(hidden_states)


class LiteBertLayerGroup(nn.Module):
    """The parameters of one group of consecutive layers.

    A group applies `inner_group_num` sub-layers per layer, `layers_per_group` times. A block kind that is shared
    (`sharing`) has one module per sub-layer, reused by every layer of the group; otherwise one per layer and sub-layer.
    """

    def __init__(self, config: LiteBertConfig):
        super().__init__()
        per_group = config.inner_group_num * config.layers_per_group
        num_attention = config.inner_group_num if config.shares_attention else per_group
        num_feed_forward = config.inner_group_num if config.shares_feed_forward else per_group
        self.attention = nn.ModuleList([LiteBertAttention(config) for _ in range(num_attention)])
        self.feed_forward = nn.ModuleList([LiteBertFeedForward(config) for _ in range(num_feed_forward)])

    def blocks(self, sublayer_index: int) -> tuple[LiteBertAttention, LiteBertFeedForward]:
        """The blocks of the `sublayer_index`-th sub-layer application within this group."""
        attention = self.attention[sublayer_index % len(self.attention)]
        feed_forward = self.feed_forward[sublayer_index % len(self.feed_forward)]
        return attention, feed_forward


class LiteBertEncoder(nn.Module):
    def __init__(self, config: LiteBertConfig):
        super().__init__()
        self.config = config
        self.groups = nn.ModuleList([LiteBertLayerGroup(config) for _ in range(config.num_hidden_groups)])
        self.layer = LiteBertLayer()

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_bias: torch.Tensor | None = None,
        packing: "TokenPacking | None" = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> torch.Tensor:
        sublayers_per_group = self.config.layers_per_group * self.config.inner_group_num
        for group in self.groups:
            for sublayer_index in range(sublayers_per_group):
                attention, feed_forward = group.blocks(sublayer_index)
                # tensors that need gradients go positionally: reentrant checkpointing only tracks positional inputs
                hidden_states = self.layer(
                    hidden_states, attention, feed_forward, attention_mask, position_bias, packing, **kwargs
                )
        return hidden_states


class TokenPacking:
    """Where the real tokens of a padded batch sit (`attention_mask` 1), so that position-wise work skips padding.

    `pack` gathers `[batch, length, ...]` into `[num_tokens, ...]` (the layout varlen attention kernels call
    unpadded, with the sequence offsets as `cu_seqlens`); `unpack` scatters back, zeros at padding.
    """

    def __init__(self, attention_mask: torch.Tensor):
        self.batch_size, self.seq_length = attention_mask.shape
        self.indices = attention_mask.flatten().nonzero().squeeze(1)

    @classmethod
    def for_batch(
        cls, config: LiteBertConfig, attention_mask: torch.Tensor | None, capturing: bool
    ) -> "TokenPacking | None":
        """A packing when the batch has padding to skip; None for the padded path: no padding, padding-free execution
        switched off, per-layer outputs requested (they keep the padded layout) or a traced export (static shapes)."""
        if not config.padding_free or capturing or attention_mask is None or attention_mask.dim() != 2:
            return None
        if torch.compiler.is_exporting() or bool(attention_mask.all()):
            return None
        return cls(attention_mask)

    def pack(self, padded: torch.Tensor) -> torch.Tensor:
        return padded.flatten(0, 1).index_select(0, self.indices)

    def unpack(self, packed: torch.Tensor) -> torch.Tensor:
        padded = packed.new_zeros(self.batch_size * self.seq_length, *packed.shape[1:])
        return padded.index_copy(0, self.indices, packed).view(self.batch_size, self.seq_length, *packed.shape[1:])


def _without_notes(config: LiteBertConfig) -> LiteBertConfig:
    """The config of a head that takes no notes: TNF is a pretraining device. A copy, so that the caller's config,
    which may still build a pretraining model, is left as it is."""
    if not config.tnf_enabled:
        return config
    config = copy.deepcopy(config)
    config.tnf_enabled = False
    return config


# Called as hook(folder, model, repo_id) when push_to_hub has saved a model to `folder` and before it uploads it.
# Filled by `litebert.hub_cards` on import, so the model knows nothing of cards; empty in the remote-code copy.
BEFORE_UPLOAD_HOOKS: list[Callable[[str, PreTrainedModel, str], None]] = []


class LiteBertPreTrainedModel(PreTrainedModel):
    config: LiteBertConfig
    config_class = LiteBertConfig
    base_model_prefix = "litebert"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_flash_attn = True
    _supports_attention_backend = True
    _can_record_outputs = {"hidden_states": LiteBertLayer, "attentions": LiteBertAttention}
    # Loading a pretraining checkpoint into another head is the normal fine-tuning path: no report of its heads (the
    # MLM/SOP heads, ELECTRA's generator and discriminator head, MC-BERT's reject option). TNF notes exist only during
    # pretraining: other heads drop them silently.
    _keys_to_ignore_on_load_unexpected = [
        r"^predictions\.", r"^sop_classifier\.", r"^notes\.", r"^generator\.", r"^discriminator_head\.",
        r"^reject_option\.",
    ]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, LiteBertEmbeddings):
            init.copy_(module.position_ids, torch.arange(module.position_ids.shape[-1]).expand((1, -1)))
        elif isinstance(module, LiteBertNoteDictionary):
            init.zeros_(module.notes)
            init.copy_(module.seen, torch.zeros_like(module.seen))

    def _flash_attn_can_dispatch(self, flash_attn_version: int, is_init_check: bool = False) -> bool:
        if self.config.uses_tupe:
            raise ValueError(
                "position_embedding_type='tupe' adds a positional bias to every attention score, and flash attention "
                "takes no additive bias; use attn_implementation='sdpa', 'flex_attention' or 'eager'."
            )
        return super()._flash_attn_can_dispatch(flash_attn_version, is_init_check)

    def get_position_attention_bias(self, seq_len: int) -> torch.Tensor:
        """TUPE's positional attention term for `seq_len` tokens, `[heads, seq_len, seq_len]`, as added to the scores
        of every layer ([CLS] untying and the TUPE-R relative bias included). For inspection and plots."""
        position_bias = self.base_model.position_bias
        if position_bias is None:
            raise ValueError("get_position_attention_bias needs position_embedding_type='tupe'.")
        if not 1 <= seq_len <= self.config.max_position_embeddings:
            limit = self.config.max_position_embeddings
            raise ValueError(f"seq_len={seq_len} must be in [1, max_position_embeddings={limit}].")
        return position_bias(seq_len)

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs) -> None:
        self.config.auto_map = _full_auto_map()
        super().save_pretrained(save_directory, *args, **kwargs)

    def _upload_modified_files(self, working_dir: str | os.PathLike, repo_id: str, *args, **kwargs):
        # push_to_hub has just saved the Hub's current card (or a blank template) as README.md: the hooks (the litebert
        # package installs one that writes its own card) may replace it before the upload
        for hook in BEFORE_UPLOAD_HOOKS:
            hook(working_dir, self, repo_id)
        return super()._upload_modified_files(working_dir, repo_id, *args, **kwargs)


@dataclass
class LiteBertForPreTrainingOutput(ModelOutput):
    """
    Output of [`LiteBertForPreTraining`].

    Args:
        loss: masked-LM loss, when `labels` are given, plus the sentence-order loss when `sentence_order_label` is.
        prediction_logits: `(batch_size, sequence_length, vocab_size)` masked-LM scores; with
            `config.sparse_prediction` and `labels`, `(num_labelled, vocab_size)`, the scores of the positions where
            `labels != -100` in row-major order (`labels[labels != -100]` are their targets).
        sop_logits: `(batch_size, 2)` sentence-order scores (0 = original order, 1 = swapped).
    """

    loss: torch.Tensor | None = None
    prediction_logits: torch.Tensor | None = None
    sop_logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


def _check_inputs(
    config: LiteBertConfig,
    input_ids: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    token_type_ids: torch.Tensor | None,
    position_ids: torch.Tensor | None,
    inputs_embeds: torch.Tensor | None,
) -> None:
    """Turn the inputs that would fail deep inside torch (or silently misbehave) into clear errors."""
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
    if input_ids is not None:
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must have shape (batch_size, sequence_length), got {tuple(input_ids.shape)}.")
        shape = tuple(input_ids.shape)
    else:
        if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != config.embedding_size:
            raise ValueError(
                "inputs_embeds must have shape (batch_size, sequence_length, embedding_size="
                f"{config.embedding_size}), got {tuple(inputs_embeds.shape)}."
            )
        shape = tuple(inputs_embeds.shape[:2])
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(
            f"The inputs have shape {shape}: an empty batch or a sequence of length 0; pass at least one sequence "
            "of at least one token."
        )
    if attention_mask is not None and attention_mask.dim() not in (2, 4):
        raise ValueError(
            f"attention_mask must be 2-D (batch_size, sequence_length) or a prepared 4-D mask, got "
            f"{attention_mask.dim()}-D shape {tuple(attention_mask.shape)}."
        )
    if shape[1] > config.max_position_embeddings:
        raise ValueError(
            f"Sequence length {shape[1]} exceeds max_position_embeddings={config.max_position_embeddings}; "
            "truncate the inputs (e.g. tokenizer(..., truncation=True, max_length=...))."
        )
    for name, tensor in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids)):
        if tensor is not None and tensor.dim() == 2 and tuple(tensor.shape) != shape:
            raise ValueError(f"{name} has shape {tuple(tensor.shape)} but the inputs have shape {shape}.")
    if position_ids is not None and config.uses_tupe:
        raise ValueError(
            "position_ids cannot be given with position_embedding_type='tupe': its positional attention term is "
            "computed once per forward pass for positions 0..L-1."
        )
    if position_ids is not None and position_ids.shape[-1] != shape[1]:
        raise ValueError(f"position_ids has shape {tuple(position_ids.shape)} but the inputs have shape {shape}.")
    if torch.compiler.is_compiling():
        return
    _check_id_range("input_ids", input_ids, config.vocab_size, "vocab_size")
    _check_id_range("token_type_ids", token_type_ids, config.type_vocab_size, "type_vocab_size")
    _check_id_range("position_ids", position_ids, config.max_position_embeddings, "max_position_embeddings")


def _check_id_range(name: str, ids: torch.Tensor | None, limit: int, limit_name: str):
    if ids is None or ids.numel() == 0:
        return
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= limit:
        bad = high if high >= limit else low
        raise ValueError(f"{name} contains {bad}, outside [0, {limit_name}={limit}).")


class LiteBertModel(LiteBertPreTrainedModel):
    def __init__(self, config: LiteBertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = LiteBertEmbeddings(config)
        self.encoder = LiteBertEncoder(config)
        self.position_bias = LiteBertPositionBias(config) if config.uses_tupe else None
        self.pooler = nn.Linear(config.hidden_size, config.hidden_size) if add_pooling_layer else None
        self.pooler_activation = nn.Tanh() if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    @merge_with_config_defaults
    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutputWithPooling:
        _check_inputs(self.config, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds)
        if torch.compiler.is_exporting() and self.config._attn_implementation == "flex_attention":
            raise ValueError(
                "flex_attention is a compiled kernel that torch.export cannot trace; export with "
                "model.set_attn_implementation('sdpa') (or 'eager'), which computes the same outputs from the same "
                "weights."
            )
        embedding_output = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds)
        padding_mask = attention_mask
        attention_mask = create_bidirectional_mask(
            config=self.config, inputs_embeds=embedding_output, attention_mask=attention_mask
        )
        position_bias = None
        if self.position_bias is not None:  # computed once, reused by every layer
            batch_size, seq_length = embedding_output.shape[:2]
            position_bias = self.position_bias(seq_length).to(embedding_output.dtype).unsqueeze(0)
            if self.config._attn_implementation == "flex_attention":  # its score_mod indexes the batch dimension
                position_bias = position_bias.expand(batch_size, -1, -1, -1)
            else:
                attention_mask, position_bias = _fold_into_mask(position_bias, attention_mask), None
        capturing = any(
            kwargs.get(name, getattr(self.config, name)) for name in ("output_hidden_states", "output_attentions")
        )
        packing = TokenPacking.for_batch(self.config, padding_mask, capturing)
        if packing is not None:
            embedding_output = packing.pack(embedding_output)
        sequence_output = self.encoder(embedding_output, attention_mask, position_bias, packing, **kwargs)
        if packing is not None:
            sequence_output = packing.unpack(sequence_output)
        pooled_output = None
        if self.pooler is not None:
            pooled_output = self.pooler_activation(self.pooler(sequence_output[:, 0]))
        return BaseModelOutputWithPooling(last_hidden_state=sequence_output, pooler_output=pooled_output)


def _fold_into_mask(position_bias: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """One additive float mask `[B or 1, heads, L, L]`: the positional term where attention is allowed, the dtype's
    minimum where the (boolean or additive) padding mask forbids it. Built once per forward pass, not per layer."""
    if attention_mask is None:
        return position_bias
    if attention_mask.dtype == torch.bool:
        return position_bias.masked_fill(~attention_mask, torch.finfo(position_bias.dtype).min)
    return position_bias + attention_mask


def encode_taking_notes(
    model: "LiteBertPreTrainedModel",
    tnf_occurrences: torch.Tensor | None,
    labels: torch.Tensor | None,
    **inputs,
) -> BaseModelOutputWithPooling:
    """`model.litebert(**inputs)` with TNF (`model.notes`): the notes of the rare-word occurrences are mixed into the
    embedding output, except occurrences with a prediction target among their tokens (a note describes its word, so
    it would give the answer away); in training mode every occurrence then updates its word's note."""
    notes_mixed = nullcontext()
    if tnf_occurrences is not None:
        if model.notes is None:
            raise ValueError("tnf_occurrences were given but config.tnf_enabled is False.")
        notes_mixed = model.notes.mixed_into(model.litebert.embeddings, tnf_occurrences, labels)
    with notes_mixed:
        outputs = model.litebert(return_dict=True, **inputs)
    if tnf_occurrences is not None and model.training:
        model.notes.update(tnf_occurrences, outputs.last_hidden_state, inputs.get("attention_mask"))
    return outputs


class LiteBertMLMHead(nn.Module):
    """Maps hidden states to the embedding size, then scores every token with the (tied) word embeddings."""

    def __init__(self, config: LiteBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.embedding_size)
        self.activation = activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(config.embedding_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.embedding_size, config.vocab_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.LayerNorm(self.activation(self.dense(hidden_states))))

    def score(
        self, hidden_states: torch.Tensor, labels: torch.Tensor | None, sparse: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits and the labels they answer. With `sparse` and labels, only labelled positions are scored (the
        V-way projection is most of the head's cost, and ~85% of positions carry no label): `(num_labelled, V)`."""
        if not sparse or labels is None:
            return self(hidden_states), labels
        labelled = labels != -100
        return self(hidden_states[labelled]), labels[labelled]


class LiteBertSOPHead(nn.Module):
    def __init__(self, config: LiteBertConfig):
        super().__init__()
        self.dropout = nn.Dropout(config.sop_classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, 2)

    def forward(self, pooled_output: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(pooled_output))


_TIED_DECODER = {"predictions.decoder.weight": "litebert.embeddings.word_embeddings.weight"}


class LiteBertForPreTraining(LiteBertPreTrainedModel):
    """LiteBERT with the two pretraining heads: masked language modelling and sentence-order prediction (SOP)."""

    _tied_weights_keys = _TIED_DECODER

    def __init__(self, config: LiteBertConfig):
        super().__init__(config)
        self.litebert = LiteBertModel(config)
        self.predictions = LiteBertMLMHead(config)
        self.sop_classifier = LiteBertSOPHead(config)
        self.notes = LiteBertNoteDictionary(config) if config.tnf_enabled else None
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.predictions.decoder

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.predictions.decoder = new_embeddings

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        sentence_order_label: torch.LongTensor | None = None,
        tnf_occurrences: torch.LongTensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> LiteBertForPreTrainingOutput:
        r"""
        labels: `(batch_size, sequence_length)` token ids to predict at masked positions, -100 elsewhere.
        sentence_order_label: `(batch_size,)`, 0 when segment A precedes B in the source text, 1 when swapped;
            without it (pretraining without SOP) the loss is the masked-LM loss alone.
        tnf_occurrences: `(num_occurrences, 4)` rows `(batch_index, start, end, rare_word_id)` of the rare words in
            the batch (token positions, end inclusive), as `DataCollatorForNgramMLM(rare_words=...)` gives them. Seen
            words get their note mixed into their embeddings, except occurrences with a prediction target (any
            `labels != -100` among their tokens): a note describes its word, so it would give the answer away. In
            training mode every occurrence, masked or not, then updates its word's note from its context.
        """
        outputs = encode_taking_notes(
            self,
            tnf_occurrences,
            labels,
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            **kwargs,
        )
        prediction_scores, targets = self.predictions.score(
            outputs.last_hidden_state, labels, self.config.sparse_prediction
        )
        sop_scores = self.sop_classifier(outputs.pooler_output)

        loss = None
        if labels is not None:
            loss_fct = CrossEntropyLoss()
            loss = loss_fct(prediction_scores.view(-1, self.config.vocab_size), targets.view(-1))
            if sentence_order_label is not None:
                loss = loss + loss_fct(sop_scores.view(-1, 2), sentence_order_label.view(-1))
        return LiteBertForPreTrainingOutput(
            loss=loss,
            prediction_logits=prediction_scores,
            sop_logits=sop_scores,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


class LiteBertForMaskedLM(LiteBertPreTrainedModel):
    _tied_weights_keys = _TIED_DECODER

    def __init__(self, config: LiteBertConfig):
        config = _without_notes(config)
        super().__init__(config)
        self.litebert = LiteBertModel(config, add_pooling_layer=False)
        self.predictions = LiteBertMLMHead(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.predictions.decoder

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.predictions.decoder = new_embeddings

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> MaskedLMOutput:
        outputs = self.litebert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            return_dict=True,
            **kwargs,
        )
        logits, targets = self.predictions.score(outputs.last_hidden_state, labels, self.config.sparse_prediction)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=targets, vocab_size=self.config.vocab_size, **kwargs)
        return MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class LiteBertForSequenceClassification(LiteBertPreTrainedModel):
    """Pooled `[CLS]` output -> linear layer; regression when `num_labels == 1`, multi-label by `problem_type`."""

    def __init__(self, config: LiteBertConfig):
        config = _without_notes(config)
        super().__init__(config)
        self.num_labels = config.num_labels
        self.litebert = LiteBertModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout_prob or 0.0)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> SequenceClassifierOutput:
        outputs = self.litebert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            return_dict=True,
            **kwargs,
        )
        logits = self.classifier(self.dropout(outputs.pooler_output))
        loss = None
        if labels is not None:
            loss = self.loss_function(labels=labels, pooled_logits=logits, config=self.config, **kwargs)
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class LiteBertForTokenClassification(LiteBertPreTrainedModel):
    def __init__(self, config: LiteBertConfig):
        config = _without_notes(config)
        super().__init__(config)
        self.num_labels = config.num_labels
        self.litebert = LiteBertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.classifier_dropout_prob or 0.0)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> TokenClassifierOutput:
        outputs = self.litebert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            return_dict=True,
            **kwargs,
        )
        logits = self.classifier(self.dropout(outputs.last_hidden_state))
        loss = None
        if labels is not None:
            loss = self.loss_function(logits, labels, self.config, **kwargs)
        return TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class LiteBertForQuestionAnswering(LiteBertPreTrainedModel):
    """Extractive QA: a start and an end score per token."""

    def __init__(self, config: LiteBertConfig):
        config = _without_notes(config)
        super().__init__(config)
        self.litebert = LiteBertModel(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        start_positions: torch.LongTensor | None = None,
        end_positions: torch.LongTensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> QuestionAnsweringModelOutput:
        outputs = self.litebert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            return_dict=True,
            **kwargs,
        )
        start_logits, end_logits = self.qa_outputs(outputs.last_hidden_state).unbind(dim=-1)
        start_logits, end_logits = start_logits.contiguous(), end_logits.contiguous()
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = self.loss_function(start_logits, end_logits, start_positions, end_positions, **kwargs)
        return QuestionAnsweringModelOutput(
            loss=loss,
            start_logits=start_logits,
            end_logits=end_logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


class LiteBertForMultipleChoice(LiteBertPreTrainedModel):
    """Scores each of `num_choices` sequences with the pooled output; inputs are `(batch, num_choices, length)`."""

    def __init__(self, config: LiteBertConfig):
        config = _without_notes(config)
        super().__init__(config)
        self.litebert = LiteBertModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout_prob or 0.0)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> MultipleChoiceModelOutput:
        reference = input_ids if input_ids is not None else inputs_embeds
        if reference is None or reference.dim() != (3 if input_ids is not None else 4):
            raise ValueError(
                "LiteBertForMultipleChoice expects input_ids of shape (batch_size, num_choices, sequence_length) "
                "or inputs_embeds of shape (batch_size, num_choices, sequence_length, embedding_size)."
            )
        num_choices = reference.shape[1]

        def flatten(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else tensor.reshape(-1, *tensor.shape[2:])

        outputs = self.litebert(
            flatten(input_ids),
            attention_mask=flatten(attention_mask),
            token_type_ids=flatten(token_type_ids),
            position_ids=flatten(position_ids),
            inputs_embeds=flatten(inputs_embeds),
            return_dict=True,
            **kwargs,
        )
        logits = self.classifier(self.dropout(outputs.pooler_output)).view(-1, num_choices)
        loss = CrossEntropyLoss()(logits, labels) if labels is not None else None
        return MultipleChoiceModelOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


# One row per head: its class, the Auto class that loads it and the Hub pipeline tag of its task. Registration,
# `auto_map`, `__all__`, checkpoint conversion and model cards all derive their lists of heads from this table.
HEADS = (
    (LiteBertModel, "AutoModel", "feature-extraction"),
    (LiteBertForPreTraining, "AutoModelForPreTraining", "fill-mask"),
    (LiteBertForMaskedLM, "AutoModelForMaskedLM", "fill-mask"),
    (LiteBertForSequenceClassification, "AutoModelForSequenceClassification", "text-classification"),
    (LiteBertForTokenClassification, "AutoModelForTokenClassification", "token-classification"),
    (LiteBertForQuestionAnswering, "AutoModelForQuestionAnswering", "question-answering"),
    (LiteBertForMultipleChoice, "AutoModelForMultipleChoice", "multiple-choice"),
)
AUTO_CLASSES = {auto_class: model_class for model_class, auto_class, _ in HEADS}
PIPELINE_TAGS = {model_class.__name__: pipeline_tag for model_class, _, pipeline_tag in HEADS}

__all__ = [
    "LiteBertPreTrainedModel",
    "LiteBertForPreTrainingOutput",
    *(model_class.__name__ for model_class, _, _ in HEADS),
]

# transformers writes only the saving class's entry into `auto_map`; LiteBERT lists every head, so a folder saved from
# any of them loads into any Auto class with `trust_remote_code=True` (e.g. a pretraining checkpoint into a classifier).
for _model_class, _auto_class, _ in HEADS:
    _model_class.register_for_auto_class(_auto_class)
LiteBertConfig.register_for_auto_class()


def _full_auto_map() -> dict[str, str]:
    auto_map = {"AutoConfig": f"configuration_litebert.{LiteBertConfig.__name__}"}
    auto_map.update({name: f"modeling_litebert.{cls.__name__}" for name, cls in AUTO_CLASSES.items()})
    return auto_map
