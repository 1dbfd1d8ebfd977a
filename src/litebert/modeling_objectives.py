"""Pretraining objectives in which a small LiteBERT masked LM corrupts the main model's input.

- ELECTRA (Clark et al., ICLR 2020): a generator fills the masked positions with samples from its MLM distribution;
  the main model (the discriminator) tells, at every position, whether the token there was replaced
  ([`LiteBertForReplacedTokenDetection`]).
- MC-BERT (Xu et al., 2020, arXiv 2006.05744): the same corruption by a "meta controller"; at every position the main
  model answers a multiple-choice cloze question: which of K candidate tokens (the original once, K - 1 drawn from the
  controller) was there, or "reject" when the token it sees is the original ([`LiteBertForMultipleChoiceCloze`]).

In both, the generator shares the main model's word embeddings (ELECTRA §3.2), its samples are drawn without
gradient (the main loss never reaches the generator's sampling), and the loss is generator MLM + lambda * main loss
(+ SOP when sentence-order labels are given). The generator lives in the main model as `generator`, a
[`LiteBertForMaskedLM`] whose shape follows `config.generator_hidden_fraction`/`generator_layer_fraction`; saving also
writes it as a standalone folder `generator/`. Fine-tuning heads loaded from such a folder ignore the generator.
"""

import copy
import os
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from transformers.dynamic_module_utils import custom_object_save
from transformers.processing_utils import Unpack
from transformers.utils import ModelOutput, TransformersKwargs
from transformers.utils.generic import can_return_tuple

from .configuration_litebert import LiteBertConfig
from .modeling_litebert import (
    LiteBertForMaskedLM,
    LiteBertMLMHead,
    LiteBertModel,
    LiteBertPreTrainedModel,
    LiteBertSOPHead,
    activation,
    encode_taking_notes,
)
from .modeling_tnf import LiteBertNoteDictionary

GENERATOR_FOLDER = "generator"
_MAIN_EMBEDDINGS = "litebert.embeddings.word_embeddings.weight"
# the sampling of candidates needs the controller's full distribution at every question: done in slices of this many
# positions, so its memory stays bounded (positions x vocabulary floats per slice)
_SAMPLING_SLICE = 2048


def generator_config(config: LiteBertConfig) -> LiteBertConfig:
    """The generator's (meta controller's) config: the main config with `generator_hidden_fraction` of its attention
    heads (the head size is kept, so the same fraction of `hidden_size`) and of `intermediate_size`, and
    `generator_layer_fraction` of its layers; the embedding size stays, as the word embeddings are shared."""
    heads = max(1, round(config.num_attention_heads * config.generator_hidden_fraction))
    hidden_size = heads * config.attention_head_size
    layers = max(1, round(config.num_hidden_layers * config.generator_layer_fraction))
    generator = copy.deepcopy(config)
    generator.num_attention_heads = heads
    generator.hidden_size = hidden_size
    generator.intermediate_size = max(1, round(config.intermediate_size * hidden_size / config.hidden_size))
    generator.num_hidden_layers = layers
    generator.num_hidden_groups = config.num_hidden_groups if layers % config.num_hidden_groups == 0 else 1
    generator.tnf_enabled = False
    generator.pretraining_objective = "mlm"
    generator.sparse_prediction = True
    generator.architectures = [LiteBertForMaskedLM.__name__]
    generator._check_fields()
    return generator


def allowed_tokens(config: LiteBertConfig, device: torch.device) -> torch.Tensor:
    """`[vocab_size]` booleans: False at the special tokens, which are never sampled."""
    allowed = torch.ones(config.vocab_size, dtype=torch.bool, device=device)
    allowed[config.excluded_token_ids] = False
    return allowed


@torch.no_grad()
def sample_tokens(
    logits: torch.Tensor, allowed: torch.Tensor, num_samples: int, forbidden: torch.Tensor | None = None
) -> torch.Tensor:
    """`num_samples` draws (with replacement) per row of `logits` `[N, V]` from its softmax restricted to the
    `allowed` tokens and, when `forbidden` `[N]` is given, without each row's forbidden token: `[N, num_samples]`."""
    logits = logits.detach().float().masked_fill(~allowed, float("-inf"))
    if forbidden is not None:
        logits = logits.scatter(1, forbidden[:, None], float("-inf"))
    return torch.multinomial(torch.softmax(logits, dim=-1), num_samples, replacement=True)


def original_tokens(input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The uncorrupted text: the labels where the collator masked, the inputs elsewhere."""
    return torch.where(labels != -100, labels, input_ids)


def question_positions(
    config: LiteBertConfig, original: torch.Tensor, attention_mask: torch.Tensor | None
) -> torch.Tensor:
    """`[B, L]` booleans: the real, non-special tokens, where the main model is asked about its input."""
    excluded = torch.tensor(config.excluded_token_ids, device=original.device)
    positions = ~torch.isin(original, excluded)
    return positions if attention_mask is None else positions & attention_mask.bool()


@dataclass
class LiteBertForReplacedTokenDetectionOutput(ModelOutput):
    """
    Output of [`LiteBertForReplacedTokenDetection`].

    Args:
        loss: generator MLM loss + `discriminator_loss_weight` * replaced-token-detection loss (+ SOP loss).
        logits: `(batch_size, sequence_length)` replaced-token scores (> 0: replaced).
        replaced_labels: `(batch_size, sequence_length)` 1 where the generator's sample differs from the original
            token, 0 where the input is the original, -100 where no question is asked (padding, special tokens).
        generator_logits: `(num_labelled, vocab_size)` the generator's MLM scores at the masked positions.
        sop_logits: `(batch_size, 2)` sentence-order scores.
        generator_loss, discriminator_loss: the two parts of the loss (scalars).
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    replaced_labels: torch.Tensor | None = None
    generator_logits: torch.Tensor | None = None
    sop_logits: torch.Tensor | None = None
    generator_loss: torch.Tensor | None = None
    discriminator_loss: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class LiteBertForMultipleChoiceClozeOutput(ModelOutput):
    """
    Output of [`LiteBertForMultipleChoiceCloze`].

    Args:
        loss: controller MLM loss + `discriminator_loss_weight` * multiple-choice cloze loss (+ SOP loss).
        logits: `(batch_size, sequence_length, 1 + K)` scores of the choices at every position: the reject option
            first, then the K candidates (0 where no question is asked).
        cloze_labels: `(batch_size, sequence_length)` the right choice: 0 (reject) where the input token is the
            original, 1 (the original, always the first candidate) where it was replaced, -100 where no question is
            asked (padding, special tokens).
        candidates: `(batch_size, sequence_length, K)` the candidate token ids (the original first; padding id where no
            question is asked).
        generator_logits: `(num_labelled, vocab_size)` the controller's MLM scores at the masked positions.
        sop_logits: `(batch_size, 2)` sentence-order scores.
        generator_loss, discriminator_loss: the two parts of the loss (scalars).
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    cloze_labels: torch.Tensor | None = None
    candidates: torch.Tensor | None = None
    generator_logits: torch.Tensor | None = None
    sop_logits: torch.Tensor | None = None
    generator_loss: torch.Tensor | None = None
    discriminator_loss: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class LiteBertGeneratorPretrainedModel(LiteBertPreTrainedModel):
    """What ELECTRA and MC-BERT pretraining share: the main encoder (with its SOP head and TNF notes) and a small
    generator masked LM that shares its word embeddings."""

    _tied_weights_keys = {
        f"{GENERATOR_FOLDER}.{_MAIN_EMBEDDINGS}": _MAIN_EMBEDDINGS,
        f"{GENERATOR_FOLDER}.predictions.decoder.weight": _MAIN_EMBEDDINGS,
    }
    objective: str

    def __init__(self, config: LiteBertConfig):
        config.pretraining_objective = self.objective
        super().__init__(config)
        self.litebert = LiteBertModel(config)
        self.sop_classifier = LiteBertSOPHead(config)
        self.notes = LiteBertNoteDictionary(config) if config.tnf_enabled else None
        self.generator = LiteBertForMaskedLM(generator_config(config))

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs) -> None:
        """The main model's folder (generator weights included, so that a checkpoint resumes exactly; fine-tuning
        heads ignore them) with the modeling code for `trust_remote_code`, plus the generator as a standalone
        masked-LM folder in `generator/`."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            custom_object_save(self, save_directory)  # this file and the ones it imports (modeling_litebert, ...)
            self.generator.save_pretrained(os.path.join(save_directory, GENERATOR_FOLDER))

    def run_generator(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        token_type_ids: torch.Tensor | None,
        labels: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The generator on the masked input: its last hidden states, its MLM logits at the labelled positions and
        its MLM loss."""
        hidden = self.generator.litebert(
            input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, return_dict=True
        ).last_hidden_state
        logits, targets = self.generator.predictions.score(hidden, labels, sparse=True)
        return hidden, logits, F.cross_entropy(logits.float(), targets)

    def total_loss(
        self,
        generator_loss: torch.Tensor,
        discriminator_loss: torch.Tensor,
        sop_logits: torch.Tensor,
        sentence_order_label: torch.Tensor | None,
    ) -> torch.Tensor:
        loss = generator_loss + self.config.discriminator_loss_weight * discriminator_loss
        if sentence_order_label is not None:
            loss = loss + F.cross_entropy(sop_logits.view(-1, 2), sentence_order_label.view(-1))
        return loss


def _check_pretraining_inputs(input_ids: torch.Tensor | None, labels: torch.Tensor | None) -> None:
    if input_ids is None or labels is None:
        raise ValueError("ELECTRA and MC pretraining need input_ids (the masked text) and labels (the original ids "
                         "at masked positions, -100 elsewhere), as DataCollatorForNgramMLM gives them.")


class LiteBertDiscriminatorHead(nn.Module):
    """ELECTRA's discriminator head: dense, activation, then one replaced-token score per position."""

    def __init__(self, config: LiteBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = activation(config.hidden_act)
        self.classifier = nn.Linear(config.hidden_size, 1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.activation(self.dense(hidden_states))).squeeze(-1)


class LiteBertForReplacedTokenDetection(LiteBertGeneratorPretrainedModel):
    """ELECTRA pretraining: a generator fills the masked positions with samples, the main model detects them."""

    objective = "electra"

    def __init__(self, config: LiteBertConfig):
        super().__init__(config)
        self.discriminator_head = LiteBertDiscriminatorHead(config)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        sentence_order_label: torch.LongTensor | None = None,
        tnf_occurrences: torch.LongTensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> LiteBertForReplacedTokenDetectionOutput:
        r"""
        input_ids: the masked text, as `DataCollatorForNgramMLM` gives it; the generator reads it.
        labels: `(batch_size, sequence_length)` the original ids at masked positions, -100 elsewhere. The main model
            reads the text with every masked position filled by a sample of the generator.
        sentence_order_label: `(batch_size,)` for the SOP loss; without it, no SOP loss.
        tnf_occurrences: rare-word occurrences for TNF, as in [`LiteBertForPreTraining`].
        """
        _check_pretraining_inputs(input_ids, labels)
        _, generator_logits, generator_loss = self.run_generator(input_ids, attention_mask, token_type_ids, labels)
        original = original_tokens(input_ids, labels)
        labelled = labels != -100
        corrupted = original.clone()
        allowed = allowed_tokens(self.config, input_ids.device)
        corrupted[labelled] = sample_tokens(generator_logits, allowed, 1).squeeze(1)
        asked = question_positions(self.config, original, attention_mask)
        replaced_labels = torch.where(asked, (corrupted != original).long(), -100)

        outputs = encode_taking_notes(self, tnf_occurrences, labels, input_ids=corrupted, attention_mask=attention_mask,
                                      token_type_ids=token_type_ids, **kwargs)
        logits = self.discriminator_head(outputs.last_hidden_state)
        discriminator_loss = F.binary_cross_entropy_with_logits(logits[asked].float(), replaced_labels[asked].float())
        sop_logits = self.sop_classifier(outputs.pooler_output)
        return LiteBertForReplacedTokenDetectionOutput(
            loss=self.total_loss(generator_loss, discriminator_loss, sop_logits, sentence_order_label),
            logits=logits,
            replaced_labels=replaced_labels,
            generator_logits=generator_logits,
            sop_logits=sop_logits,
            generator_loss=generator_loss.detach(),
            discriminator_loss=discriminator_loss.detach(),
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


class LiteBertForMultipleChoiceCloze(LiteBertGeneratorPretrainedModel):
    """MC-BERT pretraining: a meta controller corrupts the masked positions and proposes candidates; at every
    position the main model picks the original among K candidates, or rejects them all when its input token is the
    original. Candidates are scored as the masked-LM head scores the vocabulary (transform, then the dot product with
    the tied word embeddings plus a per-token bias), so the main folder keeps a usable MLM head."""

    objective = "mc"
    _tied_weights_keys = {
        **LiteBertGeneratorPretrainedModel._tied_weights_keys,
        "predictions.decoder.weight": _MAIN_EMBEDDINGS,
    }

    def __init__(self, config: LiteBertConfig):
        super().__init__(config)
        self.predictions = LiteBertMLMHead(config)
        self.reject_option = nn.Linear(config.embedding_size, 1)  # the reject choice's "embedding" and bias
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.predictions.decoder

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.predictions.decoder = new_embeddings

    @torch.no_grad()
    def draw_questions(
        self, controller_hidden: torch.Tensor, original: torch.Tensor, asked: torch.Tensor, labelled: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The corrupted text (a controller sample at every masked position) and the candidates `[B, L, K]` of every
        asked position: the original first, then K - 1 controller samples other than the original."""
        allowed = allowed_tokens(self.config, original.device)
        num_distractors = self.config.mc_num_candidates - 1
        originals = original[asked]
        replacements, distractors = [], []
        for hidden, targets in zip(controller_hidden[asked].split(_SAMPLING_SLICE),
                                   originals.split(_SAMPLING_SLICE)):
            logits = self.generator.predictions(hidden)
            replacements.append(sample_tokens(logits, allowed, 1).squeeze(1))
            distractors.append(sample_tokens(logits, allowed, num_distractors, forbidden=targets))
        corrupted = original.clone()
        replace = labelled[asked]
        corrupted[asked] = torch.where(replace, torch.cat(replacements), originals)
        candidates = original.new_full((*original.shape, num_distractors + 1), self.config.pad_token_id or 0)
        candidates[asked] = torch.cat([originals[:, None], torch.cat(distractors)], dim=1)
        return corrupted, candidates

    def choice_scores(self, hidden_states: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """`[N, 1 + K]` scores: the reject option, then each candidate (hidden `[N, H]`, candidates `[N, K]`)."""
        head = self.predictions
        transformed = head.LayerNorm(head.activation(head.dense(hidden_states)))
        # embedding lookups rather than indexing: their backward sums the gradients of repeated candidates in a fixed
        # order, so that a run repeats bitwise (indexing's backward accumulates them in whatever order threads run)
        embeddings = F.embedding(candidates, head.decoder.weight)
        biases = F.embedding(candidates, head.decoder.bias[:, None]).squeeze(-1)
        candidate_scores = torch.einsum("ne,nke->nk", transformed, embeddings) + biases
        return torch.cat([self.reject_option(transformed), candidate_scores], dim=1)

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        sentence_order_label: torch.LongTensor | None = None,
        tnf_occurrences: torch.LongTensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> LiteBertForMultipleChoiceClozeOutput:
        r"""
        input_ids: the masked text, as `DataCollatorForNgramMLM` gives it; the meta controller reads it.
        labels: `(batch_size, sequence_length)` the original ids at masked positions, -100 elsewhere. The main model
            reads the text with every masked position filled by a sample of the controller.
        sentence_order_label: `(batch_size,)` for the SOP loss; without it, no SOP loss.
        tnf_occurrences: rare-word occurrences for TNF, as in [`LiteBertForPreTraining`].
        """
        _check_pretraining_inputs(input_ids, labels)
        hidden, generator_logits, generator_loss = self.run_generator(input_ids, attention_mask, token_type_ids,
                                                                      labels)
        original = original_tokens(input_ids, labels)
        labelled = labels != -100
        asked = question_positions(self.config, original, attention_mask)
        corrupted, candidates = self.draw_questions(hidden, original, asked, labelled)
        cloze_labels = torch.where(asked, (corrupted != original).long(), -100)

        outputs = encode_taking_notes(self, tnf_occurrences, labels, input_ids=corrupted, attention_mask=attention_mask,
                                      token_type_ids=token_type_ids, **kwargs)
        scores = self.choice_scores(outputs.last_hidden_state[asked], candidates[asked])
        discriminator_loss = F.cross_entropy(scores.float(), cloze_labels[asked])
        logits = scores.new_zeros(*asked.shape, scores.shape[1])
        logits[asked] = scores
        sop_logits = self.sop_classifier(outputs.pooler_output)
        return LiteBertForMultipleChoiceClozeOutput(
            loss=self.total_loss(generator_loss, discriminator_loss, sop_logits, sentence_order_label),
            logits=logits,
            cloze_labels=cloze_labels,
            candidates=candidates,
            generator_logits=generator_logits,
            sop_logits=sop_logits,
            generator_loss=generator_loss.detach(),
            discriminator_loss=discriminator_loss.detach(),
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


# The pretraining head of each objective (`litebert-pretrain --objective`).
OBJECTIVE_CLASSES = {
    "electra": LiteBertForReplacedTokenDetection,
    "mc": LiteBertForMultipleChoiceCloze,
}

__all__ = [
    "LiteBertForReplacedTokenDetection",
    "LiteBertForReplacedTokenDetectionOutput",
    "LiteBertForMultipleChoiceCloze",
    "LiteBertForMultipleChoiceClozeOutput",
    "generator_config",
    "GENERATOR_FOLDER",
]
