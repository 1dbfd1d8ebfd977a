"""Padding-free execution and sparse MLM prediction: the same outputs, losses and gradients as the padded path."""

import pytest
import torch
from transformers import AlbertConfig, AlbertModel
from transformers.activations import ACT2FN

from litebert import (
    LiteBertConfig,
    LiteBertForMaskedLM,
    LiteBertForMultipleChoice,
    LiteBertForPreTraining,
    LiteBertForQuestionAnswering,
    LiteBertForSequenceClassification,
    LiteBertForTokenClassification,
    LiteBertModel,
)
from litebert.convert import albert_to_litebert
from litebert.modeling_litebert import TokenPacking

from conftest import tiny_config_kwargs

POSITION_MODES = {
    "absolute": {},
    "tupe-a": {"position_embedding_type": "tupe"},
    "tupe-r": {"position_embedding_type": "tupe", "relative_attention_num_buckets": 8,
               "relative_attention_max_distance": 6},
}
BACKENDS = ("eager", "sdpa", "flex_attention")


def ragged_batch(batch_size=4, length=12, seed=0):
    """Random ids with a different amount of right padding per row (one row unpadded), two segments."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, 99, (batch_size, length), generator=generator)
    lengths = torch.tensor([length, 3, length - 4, 1][:batch_size])
    attention_mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
    token_type_ids = (torch.arange(length)[None, :] >= lengths[:, None] // 2).long() * attention_mask
    return {"input_ids": input_ids * attention_mask, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


def head_inputs(model_class, batch):
    """The head's inputs with labels (MLM labels on a few real tokens)."""
    real = batch["attention_mask"].bool()
    if model_class in (LiteBertForPreTraining, LiteBertForMaskedLM):
        labels = torch.where(real & (torch.arange(real.shape[1]) % 3 == 0), batch["input_ids"], -100)
        extra = {"labels": labels}
        if model_class is LiteBertForPreTraining:
            extra["sentence_order_label"] = torch.arange(len(labels)) % 2
        return {**batch, **extra}
    if model_class is LiteBertForSequenceClassification:
        return {**batch, "labels": torch.arange(len(real)) % 2}
    if model_class is LiteBertForTokenClassification:
        return {**batch, "labels": torch.where(real, batch["input_ids"] % 2, -100)}
    if model_class is LiteBertForQuestionAnswering:
        return {**batch, "start_positions": torch.zeros(len(real), dtype=torch.long),
                "end_positions": real.sum(1) - 1}
    if model_class is LiteBertForMultipleChoice:
        return {**{name: value.view(2, 2, -1) for name, value in batch.items()}, "labels": torch.tensor([1, 0])}
    return batch


def build(model_class, padding_free, backend="sdpa", **overrides):
    torch.manual_seed(0)
    config = LiteBertConfig(**tiny_config_kwargs(padding_free=padding_free, **overrides), attn_implementation=backend)
    model = model_class(config)
    if model.base_model.position_bias is not None:  # larger positional weights, so that the TUPE terms matter
        with torch.no_grad():
            for parameter in model.base_model.position_bias.parameters():
                parameter.normal_(0.0, 0.5)
    return model


def real_token_outputs(model, inputs, mask):
    """Every output of the model, at real tokens only where it has a sequence dimension."""
    outputs = model(**inputs)
    result = {}
    for name, value in outputs.items():
        if name in ("last_hidden_state", "start_logits", "end_logits", "logits") and value.shape[:2] == mask.shape:
            value = value[mask]
        elif name == "prediction_logits" and value.shape[:2] == mask.shape:
            value = value[mask]
        result[name] = value
    return result


def compare_paths(model_class, train=False, backend="sdpa", **overrides):
    """Outputs (and, with `train`, gradients) of the padding-free and padded paths on a ragged batch."""
    batch = ragged_batch()
    results = []
    for padding_free in (True, False):
        model = build(model_class, padding_free, backend, **overrides).train(train)
        inputs = head_inputs(model_class, batch)
        mask = inputs["attention_mask"].bool()
        with torch.set_grad_enabled(train):
            outputs = real_token_outputs(model, inputs, mask)
        gradients = {}
        if train:
            outputs["loss"].backward()
            gradients = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
        results.append((outputs, gradients))
    (fast, fast_gradients), (padded, padded_gradients) = results
    assert fast.keys() == padded.keys()
    for name in fast:
        torch.testing.assert_close(fast[name], padded[name], atol=1e-5, rtol=0, msg=name)
    assert fast_gradients.keys() == padded_gradients.keys()
    for name in fast_gradients:
        torch.testing.assert_close(fast_gradients[name], padded_gradients[name], atol=1e-5, rtol=0, msg=name)


@pytest.mark.parametrize("mode", POSITION_MODES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_base_model_matches_the_padded_path(backend, mode):
    compare_paths(LiteBertModel, backend=backend, **POSITION_MODES[mode])


HEADS = (LiteBertForPreTraining, LiteBertForMaskedLM, LiteBertForSequenceClassification,
         LiteBertForTokenClassification, LiteBertForMultipleChoice)


@pytest.mark.parametrize("model_class", HEADS, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("mode", ["absolute", "tupe-r"])
def test_heads_losses_and_gradients_match_the_padded_path(model_class, mode):
    compare_paths(model_class, train=True, **POSITION_MODES[mode])


def test_question_answering_scores_padding_with_the_bias_alone():
    """QA's loss is a softmax over every position, padding included, as in transformers' heads. The padded path
    scores padding from arbitrary hidden states; the padding-free one from zero hidden states, i.e. the head's bias.
    Logits at real tokens are equal; the loss is the cross-entropy of exactly those logits."""
    batch = ragged_batch()
    inputs = head_inputs(LiteBertForQuestionAnswering, batch)
    real = batch["attention_mask"].bool()
    fast = build(LiteBertForQuestionAnswering, True).eval()
    padded = build(LiteBertForQuestionAnswering, False).eval()
    with torch.no_grad():
        fast_outputs, padded_outputs = fast(**inputs), padded(**inputs)
    bias = fast.qa_outputs.bias
    for name, index in (("start_logits", 0), ("end_logits", 1)):
        torch.testing.assert_close(fast_outputs[name][real], padded_outputs[name][real], atol=1e-5, rtol=0)
        assert torch.equal(fast_outputs[name][~real], bias[index].expand(int((~real).sum())))
    cross_entropy = torch.nn.functional.cross_entropy
    expected = (cross_entropy(fast_outputs.start_logits, inputs["start_positions"])
                + cross_entropy(fast_outputs.end_logits, inputs["end_positions"])) / 2
    torch.testing.assert_close(fast_outputs.loss, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("sharing", ["all", "attention", "ffn", "none"])
@pytest.mark.parametrize("backend", ["eager", "sdpa"])  # flex_attention has no backward on CPU
def test_sharing_modes_train_like_the_padded_path(sharing, backend):
    compare_paths(LiteBertForMaskedLM, train=True, backend=backend, sharing=sharing, num_hidden_groups=2,
                  inner_group_num=2)


@pytest.mark.parametrize("sharing", ["all", "attention", "ffn", "none"])
def test_sharing_modes_with_flex_attention_match_the_padded_path(sharing):
    compare_paths(LiteBertForMaskedLM, backend="flex_attention", sharing=sharing, num_hidden_groups=2)


def test_tnf_notes_land_on_the_same_tokens():
    batch = ragged_batch()
    occurrences = torch.tensor([[0, 1, 2, 0], [2, 4, 4, 1], [1, 0, 0, 2]])
    results = []
    for padding_free in (True, False):
        model = build(LiteBertForPreTraining, padding_free, tnf_enabled=True, tnf_num_rare_words=3,
                      tnf_window=2).train()
        with torch.no_grad():
            model.notes.notes.normal_()
            model.notes.seen[:2] = True
        inputs = head_inputs(LiteBertForPreTraining, batch)
        outputs = model(**inputs, tnf_occurrences=occurrences)
        outputs.loss.backward()
        real = batch["attention_mask"].bool()
        results.append((outputs.prediction_logits[real], outputs.loss, model.notes.notes.clone(),
                        model.litebert.embeddings.word_embeddings.weight.grad))
    for fast, padded in zip(*results):
        torch.testing.assert_close(fast, padded, atol=1e-5, rtol=0)


@pytest.mark.parametrize("use_reentrant", [True, False])
def test_gradient_checkpointing_matches_the_padded_path(use_reentrant):
    gradients = []
    for padding_free, checkpointing in ((False, False), (True, True)):
        model = build(LiteBertForMaskedLM, padding_free, **POSITION_MODES["tupe-r"]).train()
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": use_reentrant})
        model(**head_inputs(LiteBertForMaskedLM, ragged_batch())).loss.backward()
        gradients.append({name: p.grad for name, p in model.named_parameters() if p.grad is not None})
    for name, gradient in gradients[1].items():
        torch.testing.assert_close(gradient, gradients[0][name], atol=1e-5, rtol=0, msg=name)


def test_padding_is_zero_and_per_layer_outputs_take_the_padded_path():
    model = build(LiteBertModel, True, backend="eager").eval()
    batch = ragged_batch()
    padding = ~batch["attention_mask"].bool()
    with torch.no_grad():
        fast = model(**batch)
        captured = model(**batch, output_hidden_states=True, output_attentions=True)
    assert torch.equal(fast.last_hidden_state[padding], torch.zeros_like(fast.last_hidden_state[padding]))
    assert captured.hidden_states[-1].shape == (4, 12, 32) and captured.attentions[0].shape == (4, 4, 12, 12)
    real = ~padding
    torch.testing.assert_close(captured.last_hidden_state[real], fast.last_hidden_state[real], atol=1e-5, rtol=0)


def test_a_batch_without_padding_is_not_gathered(monkeypatch):
    def refuse(*args):
        raise AssertionError("a batch without padding was packed")

    monkeypatch.setattr(TokenPacking, "__init__", refuse)
    model = build(LiteBertModel, True).eval()
    batch = ragged_batch()
    full = {name: value[:1] for name, value in batch.items()}  # row 0 has no padding
    with torch.no_grad():
        model(**full)
        model(input_ids=full["input_ids"])
    with pytest.raises(AssertionError, match="was packed"):
        model(**batch)


def test_converted_albert_matches_albert_on_padded_batches():
    torch.manual_seed(0)
    albert = AlbertModel(AlbertConfig(**tiny_config_kwargs())).eval()
    lite = albert_to_litebert(albert).eval()
    assert lite.config.padding_free
    batch = ragged_batch()
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        torch.testing.assert_close(lite(**batch).last_hidden_state[real], albert(**batch).last_hidden_state[real],
                                   atol=1e-5, rtol=0)
        torch.testing.assert_close(lite(**batch).pooler_output, albert(**batch).pooler_output, atol=1e-5, rtol=0)


@pytest.mark.parametrize("model_class", [LiteBertForPreTraining, LiteBertForMaskedLM], ids=lambda cls: cls.__name__)
def test_sparse_prediction_scores_only_labelled_positions(model_class):
    batch = ragged_batch()
    inputs = head_inputs(model_class, batch)
    labels = inputs["labels"]
    dense = build(model_class, True).eval()
    sparse = build(model_class, True, sparse_prediction=True).eval()
    with torch.no_grad():
        dense_outputs, sparse_outputs = dense(**inputs), sparse(**inputs)
        unlabelled = sparse(**{k: v for k, v in inputs.items() if k not in ("labels", "sentence_order_label")})
    name = "prediction_logits" if model_class is LiteBertForPreTraining else "logits"
    labelled = labels != -100
    assert sparse_outputs[name].shape == (int(labelled.sum()), 99)
    torch.testing.assert_close(sparse_outputs[name], dense_outputs[name][labelled], atol=1e-6, rtol=0)
    torch.testing.assert_close(sparse_outputs.loss, dense_outputs.loss, atol=1e-6, rtol=0)
    assert unlabelled[name].shape == (4, 12, 99)  # without labels every position is scored


def test_gelu_new_is_the_same_function():
    torch.manual_seed(0)
    model = LiteBertModel(LiteBertConfig(**tiny_config_kwargs()))
    activation = model.encoder.groups[0].feed_forward[0].activation
    assert isinstance(activation, torch.nn.GELU) and activation.approximate == "tanh"
    x = torch.linspace(-8, 8, 10001)
    torch.testing.assert_close(activation(x), ACT2FN["gelu_new"](x), atol=1e-6, rtol=0)
