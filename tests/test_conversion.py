"""Converted models must reproduce transformers' ALBERT and BERT outputs (same weights, fp32, padded batches)."""

import pytest
import torch
import transformers
from transformers import AlbertConfig, AutoModel, AutoTokenizer, BertConfig, BertModel

from litebert import LiteBertModel
from litebert.cli.convert import convert_folder
from litebert.convert import HEAD_CLASSES, albert_to_litebert, bert_to_litebert

from conftest import padded_batch

TOLERANCE = 1e-5
# transformers' output name -> LiteBERT's where they differ (BERT's next-sentence head becomes the SOP head).
RENAMED_OUTPUTS = {"seq_relationship_logits": "sop_logits"}


def albert_config(**layout):
    return AlbertConfig(
        vocab_size=120,
        embedding_size=16,
        hidden_size=48,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=40,
        num_labels=3,
        **layout,
    )


def bert_config():
    return BertConfig(
        vocab_size=120,
        hidden_size=48,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=40,
        num_labels=3,
    )


def inputs_for(head: str, vocab_size: int):
    batch = padded_batch(vocab_size, batch_size=4, length=13)
    if head == "ForMultipleChoice":  # two choices per example
        batch = {name: torch.stack([value, value.flip(0)], dim=1) for name, value in batch.items()}
    return batch


def assert_same_outputs(reference_model, converted, head, vocab_size):
    reference_model.eval()
    converted.eval()
    batch = inputs_for(head, vocab_size)
    with torch.no_grad():
        expected = reference_model(**batch, output_hidden_states=True)
        actual = converted(**batch, output_hidden_states=True)
    compared = 0
    for name, value in expected.items():
        if name == "hidden_states":
            assert len(actual.hidden_states) == len(value)
            for mine, theirs in zip(actual.hidden_states, value):
                torch.testing.assert_close(mine, theirs, atol=TOLERANCE, rtol=0)
        else:
            torch.testing.assert_close(actual[RENAMED_OUTPUTS.get(name, name)], value, atol=TOLERANCE, rtol=0)
        compared += 1
    assert compared >= 2


ALBERT_LAYOUTS = [
    dict(num_hidden_layers=4, num_hidden_groups=1, inner_group_num=1),
    dict(num_hidden_layers=4, num_hidden_groups=2, inner_group_num=1),
    dict(num_hidden_layers=4, num_hidden_groups=2, inner_group_num=2),
    dict(num_hidden_layers=3, num_hidden_groups=3, inner_group_num=1),
]


def layout_id(layout: dict) -> str:
    return "L{num_hidden_layers}-G{num_hidden_groups}-I{inner_group_num}".format(**layout)


@pytest.mark.parametrize("layout", ALBERT_LAYOUTS, ids=layout_id)
@pytest.mark.parametrize("head", list(HEAD_CLASSES))
def test_albert_heads_convert_exactly(head, layout):
    torch.manual_seed(0)
    config = albert_config(**layout)
    if head in ("ForPreTraining", "ForQuestionAnswering"):
        config.num_labels = 2  # transformers sizes its SOP and span heads by num_labels
    reference = getattr(transformers, "Albert" + head)(config)
    converted = albert_to_litebert(reference)
    assert type(converted) is HEAD_CLASSES[head]
    assert converted.config.sharing == "all"
    assert_same_outputs(reference, converted, head, 120)


@pytest.mark.parametrize("head", list(HEAD_CLASSES))
def test_bert_heads_convert_exactly(head):
    torch.manual_seed(0)
    config = bert_config()
    if head == "ForQuestionAnswering":
        config.num_labels = 2
    reference = getattr(transformers, "Bert" + head)(config)
    converted = bert_to_litebert(reference)
    assert type(converted) is HEAD_CLASSES[head]
    assert converted.config.sharing == "none" and converted.config.embedding_size == 48
    assert_same_outputs(reference, converted, head, 120)


def test_converted_classifier_keeps_labels():
    config = bert_config()
    config.id2label = {0: "neg", 1: "neutral", 2: "pos"}
    config.label2id = {v: k for k, v in config.id2label.items()}
    converted = bert_to_litebert(transformers.BertForSequenceClassification(config))
    assert converted.config.id2label == {0: "neg", 1: "neutral", 2: "pos"} and converted.config.num_labels == 3


def test_albert_layout_that_litebert_cannot_express_is_refused():
    reference = transformers.AlbertModel(albert_config(num_hidden_layers=5, num_hidden_groups=2))
    with pytest.raises(ValueError, match="num_hidden_groups=2"):
        albert_to_litebert(reference)


def test_albert_sop_head_with_other_than_two_outputs_is_refused():
    with pytest.raises(ValueError, match="SOP head has 3 outputs"):
        albert_to_litebert(transformers.AlbertForPreTraining(albert_config(num_hidden_layers=2)))


def test_wrong_family_is_refused():
    with pytest.raises(TypeError, match="Expected a transformers ALBERT model|Expected a transformers Albert model"):
        albert_to_litebert(BertModel(bert_config()))


def test_real_minilm_checkpoint_gives_bert_hidden_states(minilm_folder):
    tokenizer = AutoTokenizer.from_pretrained(minilm_folder)
    reference = BertModel.from_pretrained(minilm_folder).eval()
    converted = bert_to_litebert(reference)
    batch = tokenizer(
        ["A man is playing a guitar on the stage.", "Parameter sharing keeps the model small."],
        ["He sings along.", "Yet compute per layer is unchanged, so speed comes from elsewhere."],
        padding=True,
        return_tensors="pt",
    )
    assert batch["attention_mask"].eq(0).any()  # the batch is padded
    with torch.no_grad():
        expected = reference(**batch, output_hidden_states=True)
        actual = converted(**batch, output_hidden_states=True)
    torch.testing.assert_close(actual.last_hidden_state, expected.last_hidden_state, atol=TOLERANCE, rtol=0)
    torch.testing.assert_close(actual.pooler_output, expected.pooler_output, atol=TOLERANCE, rtol=0)
    for mine, theirs in zip(actual.hidden_states, expected.hidden_states, strict=True):
        torch.testing.assert_close(mine, theirs, atol=TOLERANCE, rtol=0)


def test_convert_command_converts_folder_with_tokenizer(minilm_folder, tmp_path):
    destination = convert_folder(minilm_folder, tmp_path / "minilm-litebert")
    names = {path.name for path in destination.iterdir()}
    assert {"config.json", "model.safetensors", "modeling_litebert.py", "tokenizer.json"} <= names
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in names)
    loaded = AutoModel.from_pretrained(destination).eval()
    assert isinstance(loaded, LiteBertModel)
    tokenizer = AutoTokenizer.from_pretrained(destination)
    batch = tokenizer(["offline conversion works"], return_tensors="pt")
    reference = BertModel.from_pretrained(minilm_folder).eval()
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(**batch).last_hidden_state, reference(**batch).last_hidden_state, atol=TOLERANCE, rtol=0
        )


def test_convert_command_refuses_other_model_types(tmp_path):
    transformers.GPT2Config(n_layer=1, n_embd=8, n_head=2).save_pretrained(tmp_path)
    with pytest.raises(SystemExit, match="'gpt2' model"):
        convert_folder(tmp_path, tmp_path / "out")
