"""Behaviour LiteBERT shares with transformers' own models: backends, capture, heads, errors, init."""

import pytest
import torch
from transformers import AlbertConfig, AlbertModel

from litebert import (
    LiteBertConfig,
    LiteBertForMaskedLM,
    LiteBertForMultipleChoice,
    LiteBertForPreTraining,
    LiteBertForSequenceClassification,
    LiteBertModel,
)
from litebert.convert import albert_to_litebert

from conftest import padded_batch, tiny_config_kwargs

SHARING = ("all", "attention", "ffn", "none")


def tiny_model(model_class=LiteBertModel, seed=0, **overrides):
    torch.manual_seed(seed)
    return model_class(LiteBertConfig(**tiny_config_kwargs(**overrides))).eval()


@pytest.mark.parametrize("sharing", SHARING)
def test_attention_backends_agree_with_padding(sharing):
    model = tiny_model(sharing=sharing, num_hidden_groups=2)
    batch = padded_batch(99)
    outputs = {}
    for backend in ("eager", "sdpa", "flex_attention"):
        model.set_attn_implementation(backend)
        with torch.no_grad():
            outputs[backend] = model(**batch).last_hidden_state
    valid = batch["attention_mask"].bool()
    for backend in ("sdpa", "flex_attention"):
        torch.testing.assert_close(outputs[backend][valid], outputs["eager"][valid], atol=1e-5, rtol=0)


def test_flash_attention_is_declared_supported():
    assert LiteBertModel._supports_flash_attn and LiteBertModel._supports_sdpa and LiteBertModel._supports_flex_attn


def test_sharing_modes_create_the_expected_number_of_blocks():
    counts = {}
    for sharing in SHARING:
        encoder = tiny_model(sharing=sharing, num_hidden_layers=6, num_hidden_groups=2, inner_group_num=1).encoder
        counts[sharing] = [(len(group.attention), len(group.feed_forward)) for group in encoder.groups]
    assert counts == {
        "all": [(1, 1), (1, 1)],
        "attention": [(1, 3), (1, 3)],
        "ffn": [(3, 1), (3, 1)],
        "none": [(3, 3), (3, 3)],
    }


def test_sharing_all_applies_one_block_per_layer():
    """With sharing='all' and one group, the encoder must equal the same layer applied L times (direct loop)."""
    model = tiny_model(sharing="all", num_hidden_layers=3)
    batch = padded_batch(99, batch_size=1, length=7)
    del batch["attention_mask"]
    attention, feed_forward = model.encoder.groups[0].attention[0], model.encoder.groups[0].feed_forward[0]
    with torch.no_grad():
        hidden = model.embeddings(batch["input_ids"], batch["token_type_ids"])
        for _ in range(3):
            hidden = feed_forward(attention(hidden)[0])
        torch.testing.assert_close(model(**batch).last_hidden_state, hidden, atol=1e-6, rtol=0)


def test_inputs_embeds_match_input_ids():
    model = tiny_model()
    batch = padded_batch(99)
    with torch.no_grad():
        from_ids = model(**batch).last_hidden_state
        embeds = model.get_input_embeddings()(batch["input_ids"])
        from_embeds = model(
            inputs_embeds=embeds, attention_mask=batch["attention_mask"], token_type_ids=batch["token_type_ids"]
        ).last_hidden_state
    torch.testing.assert_close(from_embeds, from_ids, atol=0, rtol=0)


def test_chunked_feed_forward_matches_unchunked():
    model = tiny_model()
    batch = padded_batch(99, length=12)
    with torch.no_grad():
        expected = model(**batch).last_hidden_state
    chunked = tiny_model(chunk_size_feed_forward=3)
    with torch.no_grad():
        torch.testing.assert_close(chunked(**batch).last_hidden_state, expected, atol=1e-6, rtol=0)
    assert all(ffn.chunk_size_feed_forward == 3 for ffn in chunked.encoder.groups[0].feed_forward)


@pytest.mark.parametrize("inner_group_num", [1, 2])
def test_hidden_states_and_attentions_are_recorded(inner_group_num):
    model = tiny_model(attn_implementation="eager", inner_group_num=inner_group_num, num_hidden_groups=2)
    batch = padded_batch(99)
    with torch.no_grad():
        outputs = model(**batch, output_hidden_states=True, output_attentions=True)
    applications = 4 * inner_group_num
    assert len(outputs.hidden_states) == applications + 1
    assert len(outputs.attentions) == applications
    torch.testing.assert_close(outputs.hidden_states[-1], outputs.last_hidden_state, atol=0, rtol=0)
    embedded = model.embeddings(batch["input_ids"], batch["token_type_ids"])
    torch.testing.assert_close(outputs.hidden_states[0], embedded, atol=0, rtol=0)
    probabilities = outputs.attentions[0]
    assert probabilities.shape == (3, 4, 11, 11)
    torch.testing.assert_close(probabilities.sum(-1), torch.ones(3, 4, 11), atol=1e-6, rtol=0)
    # padded keys get no attention
    assert probabilities[2][..., batch["attention_mask"][2] == 0].abs().max() < 1e-6


def test_return_dict_false_gives_tuples():
    model = tiny_model(LiteBertForPreTraining)
    batch = padded_batch(99)
    with torch.no_grad():
        as_tuple = model(**batch, return_dict=False)
        as_dict = model(**batch)
    assert isinstance(as_tuple, tuple)
    torch.testing.assert_close(as_tuple[0], as_dict.prediction_logits)
    torch.testing.assert_close(as_tuple[1], as_dict.sop_logits)


def test_pretraining_loss_is_mlm_plus_sop_cross_entropy():
    model = tiny_model(LiteBertForPreTraining)
    batch = padded_batch(99)
    labels = torch.full_like(batch["input_ids"], -100)
    labels[:, 2] = batch["input_ids"][:, 2]
    order = torch.tensor([0, 1, 1])
    with torch.no_grad():
        outputs = model(**batch, labels=labels, sentence_order_label=order)
    log_probs = outputs.prediction_logits[:, 2].log_softmax(-1)
    mlm = -log_probs.gather(1, labels[:, 2:3]).mean()
    sop = -outputs.sop_logits.log_softmax(-1).gather(1, order[:, None]).mean()
    torch.testing.assert_close(outputs.loss, mlm + sop, atol=1e-6, rtol=0)


def test_sop_head_has_no_dropout_unless_configured():
    """ALBERT's official SOP head is a plain linear layer on the pooled output, in training mode too."""
    model = tiny_model(LiteBertForPreTraining).train()
    batch = padded_batch(99)
    with torch.no_grad():
        outputs = model(**batch)
        pooled = model.litebert(**batch).pooler_output
    expected = pooled @ model.sop_classifier.classifier.weight.T + model.sop_classifier.classifier.bias
    torch.testing.assert_close(outputs.sop_logits, expected, atol=1e-6, rtol=0)
    configured = tiny_model(LiteBertForPreTraining, sop_classifier_dropout_prob=0.5).train()
    with torch.no_grad():
        first, second = configured(**batch).sop_logits, configured(**batch).sop_logits
    assert not torch.equal(first, second)
    with pytest.raises(ValueError, match="sop_classifier_dropout_prob"):
        LiteBertConfig(sop_classifier_dropout_prob=1.5)


def test_forward_kwargs_declare_the_transformers_keyword_arguments():
    """Tools read `**kwargs: Unpack[TransformersKwargs]` to learn that a model takes output_attentions and friends."""
    import inspect
    from typing import get_args

    from transformers.utils import TransformersKwargs

    for model_class in (LiteBertModel, LiteBertForPreTraining, LiteBertForMaskedLM, LiteBertForSequenceClassification,
                        LiteBertForMultipleChoice):
        (declared,) = get_args(inspect.signature(model_class.forward).parameters["kwargs"].annotation)
        assert declared is TransformersKwargs
        assert "output_attentions" in declared.__annotations__


def test_mlm_decoder_is_tied_to_word_embeddings():
    model = tiny_model(LiteBertForMaskedLM)
    assert model.predictions.decoder.weight is model.litebert.embeddings.word_embeddings.weight


def test_resize_token_embeddings_keeps_tying_and_updates_vocab():
    model = tiny_model(LiteBertForMaskedLM)
    model.resize_token_embeddings(110)
    assert model.config.vocab_size == 110
    assert model.predictions.decoder.weight is model.litebert.embeddings.word_embeddings.weight
    assert model.predictions.decoder.bias.shape == (110,)
    ids = torch.tensor([[1, 105, 109]])
    with torch.no_grad():
        assert model(input_ids=ids).logits.shape == (1, 3, 110)


@pytest.mark.parametrize(
    "num_labels, labels, problem_type",
    [
        (1, torch.tensor([0.5, -1.0, 2.0]), "regression"),
        (3, torch.tensor([0, 2, 1]), "single_label_classification"),
        (3, torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]]), "multi_label_classification"),
    ],
)
def test_sequence_classification_problem_types(num_labels, labels, problem_type):
    model = tiny_model(LiteBertForSequenceClassification, num_labels=num_labels)
    with torch.no_grad():
        outputs = model(**padded_batch(99), labels=labels)
    assert model.config.problem_type == problem_type
    logits = outputs.logits
    if problem_type == "regression":
        expected = ((logits.squeeze(-1) - labels) ** 2).mean()
    elif problem_type == "single_label_classification":
        expected = -logits.log_softmax(-1).gather(1, labels[:, None]).mean()
    else:
        expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
    torch.testing.assert_close(outputs.loss, expected, atol=1e-6, rtol=0)


def test_batch_equals_rows_one_by_one():
    model = tiny_model(LiteBertForSequenceClassification)
    batch = padded_batch(99)
    with torch.no_grad():
        batched = model(**batch).logits
        for row in range(3):
            length = int(batch["attention_mask"][row].sum())
            single = {name: value[row : row + 1, :length] for name, value in batch.items()}
            torch.testing.assert_close(model(**single).logits[0], batched[row], atol=1e-5, rtol=0)


def test_multiple_choice_scores_each_choice_independently():
    model = tiny_model(LiteBertForMultipleChoice)
    batch = padded_batch(99, batch_size=3)
    choices = {name: value.unsqueeze(0) for name, value in batch.items()}  # one example, three choices
    with torch.no_grad():
        logits = model(**choices, labels=torch.tensor([1])).logits
        pooled = model.litebert(**batch).pooler_output
    torch.testing.assert_close(logits[0], model.classifier(pooled).squeeze(-1), atol=1e-6, rtol=0)


def test_gradient_checkpointing_gives_the_same_gradients():
    grads = []
    for checkpointing in (False, True):
        model = tiny_model(LiteBertForMaskedLM, sharing="attention").train()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert model.litebert.encoder.layer.gradient_checkpointing
        batch = padded_batch(99)
        loss = model(**batch, labels=batch["input_ids"]).loss
        loss.backward()
        grads.append({name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-6, rtol=0)


def test_init_weights_covers_every_parameter_and_buffer_on_meta_device():
    config = LiteBertConfig(**tiny_config_kwargs())
    with torch.device("meta"):
        model = LiteBertForPreTraining(config)
    model.to_empty(device="cpu")
    model.init_weights()
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        assert torch.isfinite(tensor).all(), name
    torch.testing.assert_close(model.litebert.embeddings.position_ids[0], torch.arange(64))
    std = model.litebert.encoder.groups[0].attention[0].qkv.weight.std().item()
    assert 0.01 < std < 0.03  # normal(0, initializer_range=0.02)
    assert model.litebert.encoder.groups[0].attention[0].LayerNorm.weight.eq(1).all()


def test_partial_load_initialises_new_head(tmp_path):
    tiny_model(LiteBertForPreTraining).save_pretrained(tmp_path)
    classifier = LiteBertForSequenceClassification.from_pretrained(tmp_path, num_labels=4)
    assert classifier.classifier.weight.shape == (4, 32)
    assert torch.isfinite(classifier.classifier.weight).all() and classifier.classifier.weight.std() > 0
    assert classifier.classifier.bias.eq(0).all()


def test_ignore_mismatched_sizes_reinitialises_the_classifier(tmp_path):
    tiny_model(LiteBertForSequenceClassification, num_labels=2).save_pretrained(tmp_path)
    with pytest.raises(RuntimeError, match="size mismatch|ignore_mismatched_sizes"):
        LiteBertForSequenceClassification.from_pretrained(tmp_path, num_labels=5)
    loaded = LiteBertForSequenceClassification.from_pretrained(tmp_path, num_labels=5, ignore_mismatched_sizes=True)
    assert loaded.classifier.weight.shape == (5, 32)


def test_parameter_count_with_sharing_all_equals_albert():
    shape = dict(vocab_size=300, embedding_size=24, hidden_size=48, num_hidden_layers=6, num_attention_heads=4,
                 intermediate_size=96, num_hidden_groups=2, inner_group_num=2)
    albert = AlbertModel(AlbertConfig(**shape))
    lite = LiteBertModel(LiteBertConfig(**shape))
    assert sum(p.numel() for p in lite.parameters()) == sum(p.numel() for p in albert.parameters())


class TestBadInput:
    model = tiny_model()

    def test_ids_outside_vocabulary(self):
        with pytest.raises(ValueError, match=r"input_ids contains 99, outside \[0, vocab_size=99\)"):
            self.model(input_ids=torch.tensor([[1, 99]]))
        with pytest.raises(ValueError, match="input_ids contains -1"):
            self.model(input_ids=torch.tensor([[1, -1]]))

    def test_sequence_longer_than_positions(self):
        with pytest.raises(ValueError, match="Sequence length 65 exceeds max_position_embeddings=64"):
            self.model(input_ids=torch.ones(1, 65, dtype=torch.long))

    def test_wrong_ranks_and_shapes(self):
        with pytest.raises(ValueError, match=r"input_ids must have shape \(batch_size, sequence_length\)"):
            self.model(input_ids=torch.ones(5, dtype=torch.long))
        with pytest.raises(ValueError, match=r"attention_mask has shape \(1, 4\) but the inputs have shape \(1, 5\)"):
            self.model(input_ids=torch.ones(1, 5, dtype=torch.long), attention_mask=torch.ones(1, 4))
        with pytest.raises(ValueError, match="inputs_embeds must have shape"):
            self.model(inputs_embeds=torch.ones(1, 5, 32))
        with pytest.raises(ValueError, match="exactly one of input_ids or inputs_embeds"):
            self.model()

    def test_empty_batch_and_empty_sequences(self):
        with pytest.raises(ValueError, match=r"inputs have shape \(0, 5\): an empty batch"):
            self.model(input_ids=torch.ones(0, 5, dtype=torch.long))
        with pytest.raises(ValueError, match=r"inputs have shape \(2, 0\).*length 0"):
            self.model(input_ids=torch.ones(2, 0, dtype=torch.long))

    @pytest.mark.parametrize("mask_shape", [(5,), (1, 5, 5)])
    def test_attention_mask_of_the_wrong_rank(self, mask_shape):
        with pytest.raises(ValueError, match=f"attention_mask must be 2-D .* got {len(mask_shape)}-D"):
            self.model(input_ids=torch.ones(1, 5, dtype=torch.long), attention_mask=torch.ones(mask_shape))

    def test_token_type_outside_range(self):
        with pytest.raises(ValueError, match=r"token_type_ids contains 2, outside \[0, type_vocab_size=2\)"):
            self.model(input_ids=torch.ones(1, 3, dtype=torch.long), token_type_ids=torch.tensor([[0, 1, 2]]))

    def test_multiple_choice_needs_three_dimensions(self):
        model = tiny_model(LiteBertForMultipleChoice)
        with pytest.raises(ValueError, match="num_choices"):
            model(input_ids=torch.ones(2, 5, dtype=torch.long))


def test_converted_albert_flex_attention_matches_albert_sdpa():
    torch.manual_seed(0)
    albert = AlbertModel(AlbertConfig(**{k: v for k, v in tiny_config_kwargs().items()})).eval()
    lite = albert_to_litebert(albert)
    lite.set_attn_implementation("flex_attention")
    batch = padded_batch(99)
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        torch.testing.assert_close(
            lite(**batch).last_hidden_state[real], albert(**batch).last_hidden_state[real], atol=1e-5, rtol=0
        )
