"""LiteBERT configuration: ALBERT's field names plus the architecture switches LiteBERT adds."""

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig
from transformers.activations import ACT2FN

SHARING_MODES = ("all", "attention", "ffn", "none")
POSITION_EMBEDDING_TYPES = ("absolute", "tupe")
# mlm: masked LM + SOP (ALBERT); electra: replaced-token detection (Clark et al., ICLR 2020); mc: multiple-choice
# cloze with a reject option (MC-BERT, Xu et al. 2020). See litebert.modeling_objectives.
PRETRAINING_OBJECTIVES = ("mlm", "electra", "mc")

# Published shapes. ALBERT sizes follow Table 1 of the ALBERT paper (v2 releases: no dropout, gelu_new);
# BERT sizes follow the BERT paper, with the vocabulary of 30,000 pieces the ALBERT paper compares with.
_ALBERT = dict(embedding_size=128, sharing="all", hidden_act="gelu_new")
_BERT = dict(sharing="none", hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
PRESETS = {
    "albert-base": dict(
        _ALBERT, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
    ),
    "albert-large": dict(
        _ALBERT, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096
    ),
    "albert-xlarge": dict(
        _ALBERT, hidden_size=2048, num_hidden_layers=24, num_attention_heads=16, intermediate_size=8192
    ),
    "albert-xxlarge": dict(
        _ALBERT, hidden_size=4096, num_hidden_layers=12, num_attention_heads=64, intermediate_size=16384
    ),
    # TUPE (Ke, He & Liu, ICLR 2021) on the ALBERT-base shape: TUPE-A, and TUPE-R with T5-style relative buckets.
    "tupe-base": dict(
        _ALBERT, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        position_embedding_type="tupe",
    ),
    "tupe-r-base": dict(
        _ALBERT, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        position_embedding_type="tupe", relative_attention_num_buckets=32,
    ),
    "bert-base": dict(
        _BERT, embedding_size=768, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
    ),
    "bert-large": dict(
        _BERT,
        embedding_size=1024,
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
    ),
}


@strict
class LiteBertConfig(PreTrainedConfig):
    r"""
    Configuration of a LiteBERT encoder. Field names follow [`AlbertConfig`] where ALBERT has them; the defaults give
    the ALBERT-base shape (unlike `AlbertConfig()`, whose defaults are the xxlarge shape).

    Args:
        vocab_size (`int`, defaults to 30000): size of the token vocabulary (V).
        embedding_size (`int`, defaults to 128): size of the factorized token embeddings (E); they are mapped to
            `hidden_size` by one linear layer, also when E = H.
        hidden_size (`int`, defaults to 768): width of the encoder (H).
        num_hidden_layers (`int`, defaults to 12): number of layer applications (L).
        num_hidden_groups (`int`, defaults to 1): layers are split into this many contiguous groups; parameters are
            shared within a group only. Must divide `num_hidden_layers`.
        inner_group_num (`int`, defaults to 1): sub-layers applied per layer (ALBERT's inner groups).
        sharing (`str`, defaults to `"all"`): which parameters the layers of a group share: `"all"` (ALBERT),
            `"attention"` (attention shared, a feed-forward block per layer), `"ffn"` (feed-forward shared, an
            attention block per layer) or `"none"` (BERT).
        position_embedding_type (`str`, defaults to `"absolute"`): `"absolute"` adds learned position embeddings to
            the input embeddings (BERT, ALBERT); `"tupe"` adds none and instead gives every attention score a
            positional term computed from separately projected position embeddings, shared by all layers (TUPE).
        tupe_untie_cls (`bool`, defaults to `True`): in TUPE mode, replace the positional term of the `[CLS]` row and
            column by learned per-head values, so `[CLS]` attends and is attended to independently of position.
        relative_attention_num_buckets (`int`, defaults to 0): in TUPE mode, > 0 adds a per-head bidirectional
            relative-position bias with this many T5-style buckets (TUPE-R); 0 turns it off.
        relative_attention_max_distance (`int`, defaults to 128): distances beyond this share the last bucket.
        tnf_enabled (`bool`, defaults to `False`): Taking Notes on the Fly (TNF) during pretraining: a note
            dictionary of contextual representations of rare words, mixed into their input embeddings. Only
            [`LiteBertForPreTraining`] uses it; fine-tuning heads switch it off.
        tnf_num_rare_words (`int`, defaults to 0): size of the note dictionary (the rare-word vocabulary).
        tnf_note_weight (`float`, defaults to 0.5): lambda; a rare word's token embeddings e become
            (1 - lambda) * e + lambda * note.
        tnf_momentum (`float`, defaults to 0.1): gamma; note <- (1 - gamma) * note + gamma * new context.
        tnf_window (`int`, defaults to 16): k; the context of an occurrence at tokens s..t is the mean of the last
            layer's outputs at s - k .. t + k.
        hidden_dropout_prob, attention_probs_dropout_prob (`float`, default 0.0): ALBERT v2 uses no dropout.
        classifier_dropout_prob (`float`, defaults to 0.1): dropout before the fine-tuning classification heads.
        sop_classifier_dropout_prob (`float`, defaults to 0.0): dropout before the sentence-order head; ALBERT's
            official pretraining code applies none.
        padding_free (`bool`, defaults to `True`): when `attention_mask` has padding, run every position-wise
            operation (QKV and output projections, feed-forward, LayerNorms) on the real tokens only and attention
            per sequence; outputs at real tokens are unchanged and `last_hidden_state` is zero at padding. Batches
            without padding, and calls that ask for `output_hidden_states`/`output_attentions`, take the padded path.
        sparse_prediction (`bool`, defaults to `False`): with `labels`, the masked-LM heads score only the positions
            that carry a label; their logits are then `(num_labelled, vocab_size)` in row-major order of the batch.
        pretraining_objective (`str`, defaults to `"mlm"`): the task the encoder was (or is) pretrained with: `"mlm"`
            (masked LM, [`LiteBertForPreTraining`]), `"electra"` (replaced-token detection,
            [`LiteBertForReplacedTokenDetection`]) or `"mc"` (multiple-choice cloze,
            [`LiteBertForMultipleChoiceCloze`]).
            Fine-tuning heads ignore it; model cards name it.
        generator_hidden_fraction (`float`, defaults to 1/3): ELECTRA's generator and MC-BERT's meta controller are
            LiteBERT masked LMs with this fraction of the attention heads (so of `hidden_size`) and of
            `intermediate_size`, sharing the word embeddings (1/3: ELECTRA-Base's 256 of 768, MC-BERT's divider 3).
        generator_layer_fraction (`float`, defaults to 1.0): the fraction of `num_hidden_layers` the generator has.
        discriminator_loss_weight (`float`, defaults to 50.0): lambda in loss = generator MLM + lambda * main-model
            loss (replaced-token detection or multiple-choice cloze), as in both papers' released settings.
        mc_num_candidates (`int`, defaults to 9): K, the candidate tokens of every multiple-choice cloze question (the
            original once, K - 1 drawn from the meta controller); with the reject option, K + 1 choices.
        special_token_ids (`list[int]`, *optional*): the tokenizer's special-token ids; ELECTRA and MC pretraining
            never sample them as replacements or candidates, nor ask questions at their positions. Defaults to the
            padding, `[CLS]` (bos) and `[SEP]` (eos) ids.

    Example:

    ```python
    >>> from litebert import LiteBertConfig, LiteBertModel
    >>> config = LiteBertConfig.from_preset("albert-base", sharing="attention")
    >>> model = LiteBertModel(config)
    ```
    """

    model_type = "litebert"

    vocab_size: int = 30000
    embedding_size: int = 128
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_hidden_groups: int = 1
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    inner_group_num: int = 1
    hidden_act: str = "gelu_new"
    hidden_dropout_prob: int | float = 0.0
    attention_probs_dropout_prob: int | float = 0.0
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    classifier_dropout_prob: int | float | None = 0.1
    sop_classifier_dropout_prob: int | float = 0.0
    padding_free: bool = True
    sparse_prediction: bool = False
    pad_token_id: int | None = 0
    bos_token_id: int | None = 2
    eos_token_id: int | None = 3
    tie_word_embeddings: bool = True
    sharing: str = "all"
    position_embedding_type: str = "absolute"
    tupe_untie_cls: bool = True
    relative_attention_num_buckets: int = 0
    relative_attention_max_distance: int = 128
    tnf_enabled: bool = False
    tnf_num_rare_words: int = 0
    tnf_note_weight: float = 0.5
    tnf_momentum: float = 0.1
    tnf_window: int = 16
    pretraining_objective: str = "mlm"
    generator_hidden_fraction: float = 1 / 3
    generator_layer_fraction: float = 1.0
    discriminator_loss_weight: float = 50.0
    mc_num_candidates: int = 9
    special_token_ids: list[int] | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self._check_fields()

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "LiteBertConfig":
        """A configuration with a published shape (see `PRESETS`), with any field overridden by keyword."""
        if name not in PRESETS:
            raise ValueError(f"preset={name!r} is unknown; allowed presets: {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    @property
    def layers_per_group(self) -> int:
        return self.num_hidden_layers // self.num_hidden_groups

    @property
    def attention_head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def uses_tupe(self) -> bool:
        """Positions enter through TUPE's untied attention term, not the embeddings."""
        return self.position_embedding_type == "tupe"

    @property
    def uses_relative_positions(self) -> bool:
        """TUPE-R: TUPE plus a bucketed relative-position bias."""
        return self.uses_tupe and self.relative_attention_num_buckets > 0

    @property
    def shares_attention(self) -> bool:
        """One attention block per sub-layer and group, reused by every layer of the group."""
        return self.sharing in ("all", "attention")

    @property
    def shares_feed_forward(self) -> bool:
        """One feed-forward block per sub-layer and group, reused by every layer of the group."""
        return self.sharing in ("all", "ffn")

    def _check_fields(self):
        for name in (
            "vocab_size",
            "embedding_size",
            "hidden_size",
            "num_hidden_layers",
            "num_hidden_groups",
            "num_attention_heads",
            "intermediate_size",
            "inner_group_num",
            "max_position_embeddings",
            "type_vocab_size",
        ):
            _require(getattr(self, name) > 0, name, getattr(self, name), "a positive integer")
        for name in (
            "hidden_dropout_prob",
            "attention_probs_dropout_prob",
            "classifier_dropout_prob",
            "sop_classifier_dropout_prob",
        ):
            value = getattr(self, name)
            _require(value is None or 0.0 <= value < 1.0, name, value, "a probability in [0, 1)")
        _require(
            self.hidden_size % self.num_attention_heads == 0,
            "num_attention_heads",
            self.num_attention_heads,
            f"a divisor of hidden_size={self.hidden_size}",
        )
        _require(
            self.num_hidden_layers % self.num_hidden_groups == 0,
            "num_hidden_groups",
            self.num_hidden_groups,
            f"a divisor of num_hidden_layers={self.num_hidden_layers}",
        )
        _require(self.sharing in SHARING_MODES, "sharing", self.sharing, f"one of {SHARING_MODES}")
        _require(
            self.position_embedding_type in POSITION_EMBEDDING_TYPES,
            "position_embedding_type",
            self.position_embedding_type,
            f"one of {POSITION_EMBEDDING_TYPES}",
        )
        self._check_tupe_fields()
        self._check_tnf_fields()
        self._check_objective_fields()
        _require(self.hidden_act in ACT2FN, "hidden_act", self.hidden_act, f"one of {sorted(ACT2FN)}")
        _require(self.initializer_range > 0, "initializer_range", self.initializer_range, "a positive number")
        _require(self.layer_norm_eps > 0, "layer_norm_eps", self.layer_norm_eps, "a positive number")
        _require(
            self.chunk_size_feed_forward >= 0, "chunk_size_feed_forward", self.chunk_size_feed_forward, ">= 0"
        )
        _require(
            self.pad_token_id is None or 0 <= self.pad_token_id < self.vocab_size,
            "pad_token_id",
            self.pad_token_id,
            f"None or a token id in [0, vocab_size={self.vocab_size})",
        )


    def _check_tupe_fields(self):
        buckets = self.relative_attention_num_buckets
        _require(
            buckets == 0 or (buckets >= 4 and buckets % 2 == 0),
            "relative_attention_num_buckets",
            buckets,
            "0 (off) or an even number >= 4 (half the buckets per direction)",
        )
        if buckets:
            _require(
                self.uses_tupe,
                "relative_attention_num_buckets",
                buckets,
                "0 unless position_embedding_type='tupe' (TUPE-R)",
            )
            _require(
                self.relative_attention_max_distance > buckets // 4,
                "relative_attention_max_distance",
                self.relative_attention_max_distance,
                f"greater than relative_attention_num_buckets // 4 = {buckets // 4} (the exactly-bucketed distances)",
            )

    def _check_tnf_fields(self):
        _require(self.tnf_num_rare_words >= 0, "tnf_num_rare_words", self.tnf_num_rare_words, ">= 0")
        if self.tnf_enabled:
            _require(
                self.tnf_num_rare_words > 0,
                "tnf_num_rare_words",
                self.tnf_num_rare_words,
                "> 0 when tnf_enabled=True (build a rare-word vocabulary first: litebert.tnf_data)",
            )
        _require(0.0 < self.tnf_note_weight < 1.0, "tnf_note_weight", self.tnf_note_weight, "in (0, 1)")
        _require(0.0 < self.tnf_momentum <= 1.0, "tnf_momentum", self.tnf_momentum, "in (0, 1]")
        _require(self.tnf_window >= 0, "tnf_window", self.tnf_window, ">= 0")


    def _check_objective_fields(self):
        _require(
            self.pretraining_objective in PRETRAINING_OBJECTIVES,
            "pretraining_objective",
            self.pretraining_objective,
            f"one of {PRETRAINING_OBJECTIVES}",
        )
        for name in ("generator_hidden_fraction", "generator_layer_fraction"):
            _require(0.0 < getattr(self, name) <= 1.0, name, getattr(self, name), "in (0, 1]")
        _require(self.discriminator_loss_weight > 0, "discriminator_loss_weight", self.discriminator_loss_weight,
                 "a positive number")
        _require(self.mc_num_candidates >= 2, "mc_num_candidates", self.mc_num_candidates,
                 "at least 2 (the original and at least one distractor)")
        ids = self.special_token_ids
        _require(
            ids is None or all(0 <= token_id < self.vocab_size for token_id in ids),
            "special_token_ids",
            ids,
            f"None or token ids in [0, vocab_size={self.vocab_size})",
        )

    @property
    def excluded_token_ids(self) -> list[int]:
        """Token ids that ELECTRA/MC pretraining never samples and never asks about: the special tokens."""
        if self.special_token_ids is not None:
            return sorted(set(self.special_token_ids))
        return sorted({token_id for token_id in (self.pad_token_id, self.bos_token_id, self.eos_token_id)
                       if token_id is not None})


def _require(condition: bool, field: str, value: object, allowed: str) -> None:
    if not condition:
        raise ValueError(f"LiteBertConfig: {field}={value!r} is invalid; it must be {allowed}.")


__all__ = ["LiteBertConfig", "PRESETS", "SHARING_MODES", "POSITION_EMBEDDING_TYPES", "PRETRAINING_OBJECTIVES"]
