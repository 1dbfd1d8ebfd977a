"""TUPE (untied positional encoding): the attention scores re-derived by hand, and the properties that define TUPE."""

import math
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

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

from conftest import padded_batch, tiny_config_kwargs

HEADS, HIDDEN = 4, 32
HEAD_SIZE = HIDDEN // HEADS


def tupe_model(model_class=LiteBertModel, seed=0, **overrides):
    torch.manual_seed(seed)
    kwargs = tiny_config_kwargs(position_embedding_type="tupe", **overrides)
    model = model_class(LiteBertConfig(**kwargs)).eval()
    with torch.no_grad():  # larger positional weights than the 0.02 init, so that every term matters in the checks
        for parameter in model.base_model.position_bias.parameters():
            parameter.normal_(0.0, 0.5)
    return model


def layer_norm(x, module):
    mean = x.mean(-1, keepdim=True)
    variance = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(variance + module.eps) * module.weight + module.bias


def t5_bucket(relative, num_buckets, max_distance):
    """T5's bidirectional bucket of one relative position j - i, written out for a single integer."""
    half = num_buckets // 2
    bucket = half if relative > 0 else 0
    distance = abs(relative)
    exact = half // 2
    if distance < exact:
        return bucket + distance
    large = exact + int(math.log(distance / exact) / math.log(max_distance / exact) * (half - exact))
    return bucket + min(large, half - 1)


def expected_position_term(model, length):
    """(P_i Uq)(P_j Uk)^T / sqrt(2d) per head [+ b(j - i)], with the [CLS] row and column replaced by theta1/theta2."""
    module = model.base_model.position_bias
    config = model.config
    positions = layer_norm(module.position_embeddings.weight[:length], module.LayerNorm)
    query = positions @ module.query.weight.T + module.query.bias
    key = positions @ module.key.weight.T + module.key.bias
    term = torch.empty(HEADS, length, length)
    for head in range(HEADS):
        columns = slice(head * HEAD_SIZE, (head + 1) * HEAD_SIZE)
        term[head] = query[:, columns] @ key[:, columns].T / math.sqrt(2 * HEAD_SIZE)
    if config.relative_attention_num_buckets:
        table = module.relative_attention_bias.weight
        for i in range(length):
            for j in range(length):
                bucket = t5_bucket(j - i, config.relative_attention_num_buckets, config.relative_attention_max_distance)
                term[:, i, j] += table[bucket]
    if config.tupe_untie_cls:
        cls = layer_norm(module.cls_embeddings.weight, module.LayerNorm)
        cls_query = cls @ module.query.weight.T + module.query.bias
        cls_key = cls @ module.key.weight.T + module.key.bias
        for head in range(HEADS):
            columns = slice(head * HEAD_SIZE, (head + 1) * HEAD_SIZE)
            theta1 = cls_query[0, columns] @ cls_key[0, columns] / math.sqrt(2 * HEAD_SIZE)
            theta2 = cls_query[1, columns] @ cls_key[1, columns] / math.sqrt(2 * HEAD_SIZE)
            term[head, 0, :] = theta1
            term[head, 1:, 0] = theta2
    return term


VARIANTS = {
    "tupe-a": dict(tupe_untie_cls=False),
    "tupe-a-untied-cls": dict(tupe_untie_cls=True),
    "tupe-r": dict(tupe_untie_cls=True, relative_attention_num_buckets=8, relative_attention_max_distance=6),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_first_layer_attention_matches_the_tupe_formula(variant):
    model = tupe_model(attn_implementation="eager", **VARIANTS[variant])
    batch = padded_batch(99, length=12)
    with torch.no_grad():
        outputs = model(**batch, output_hidden_states=True, output_attentions=True)
        x = outputs.hidden_states[0]  # the first layer's input: word + type embeddings, no positions
        attention = model.encoder.groups[0].attention[0]
        w_q, w_k, _ = attention.qkv.weight.chunk(3)
        b_q, b_k, _ = attention.qkv.bias.chunk(3)
        query, key = x @ w_q.T + b_q, x @ w_k.T + b_k
        position_term = expected_position_term(model, 12)
        torch.testing.assert_close(model.get_position_attention_bias(12), position_term, atol=1e-5, rtol=0)
        for row in range(3):
            padding = batch["attention_mask"][row] == 0
            for head in range(HEADS):
                columns = slice(head * HEAD_SIZE, (head + 1) * HEAD_SIZE)
                logits = query[row, :, columns] @ key[row, :, columns].T / math.sqrt(2 * HEAD_SIZE)
                logits = logits + position_term[head]
                logits[:, padding] = float("-inf")
                torch.testing.assert_close(
                    outputs.attentions[0][row, head], logits.softmax(-1), atol=1e-5, rtol=0
                )


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("sharing", ["all", "attention", "ffn", "none"])
def test_backends_agree_with_padding(variant, sharing):
    model = tupe_model(sharing=sharing, num_hidden_groups=2, **VARIANTS[variant])
    batch = padded_batch(99)
    results = {}
    for backend in ("eager", "sdpa", "flex_attention"):
        model.set_attn_implementation(backend)
        with torch.no_grad():
            results[backend] = model(**batch).last_hidden_state
    valid = batch["attention_mask"].bool()
    for backend in ("sdpa", "flex_attention"):
        torch.testing.assert_close(results[backend][valid], results["eager"][valid], atol=1e-5, rtol=0)


def test_no_position_vectors_in_the_embeddings():
    model = tupe_model()
    assert model.embeddings.position_embeddings is None
    ids = torch.tensor([[2, 17, 40, 17, 17, 3]])
    with torch.no_grad():
        embedded = model.embeddings(ids, torch.zeros_like(ids))
    # equal up to float rounding of the E -> H projection (matrix kernels may sum rows in different orders)
    torch.testing.assert_close(embedded[0, 1], embedded[0, 3], atol=1e-6, rtol=0)
    torch.testing.assert_close(embedded[0, 1], embedded[0, 4], atol=1e-6, rtol=0)
    assert (embedded[0, 1] - embedded[0, 2]).abs().max() > 1e-2


def test_permuting_tokens_changes_the_output():
    model = tupe_model()
    ids = torch.tensor([[2, 11, 12, 13, 14, 15, 3]])
    permutation = torch.tensor([0, 5, 3, 1, 4, 2, 6])
    with torch.no_grad():
        original = model(input_ids=ids).last_hidden_state[0]
        permuted = model(input_ids=ids[:, permutation]).last_hidden_state[0]
    # without positions the encoder would be permutation-equivariant: permuted == original[permutation]
    assert (permuted - original[permutation]).abs().max() > 1e-3


def test_untied_cls_row_and_column_are_constant_per_head():
    model = tupe_model(tupe_untie_cls=True, relative_attention_num_buckets=8, relative_attention_max_distance=6)
    bias = model.get_position_attention_bias(20)
    for head in range(HEADS):
        assert torch.all(bias[head, 0, :] == bias[head, 0, 0])
        assert torch.all(bias[head, 1:, 0] == bias[head, 1, 0])
    assert not torch.allclose(bias[:, 0, 0], bias[:, 1, 0])
    tied = tupe_model(tupe_untie_cls=False).get_position_attention_bias(20)
    assert tied[0, 0, :].std() > 1e-3


def test_relative_part_depends_only_on_the_offset():
    model = tupe_model(tupe_untie_cls=False, relative_attention_num_buckets=8, relative_attention_max_distance=6)
    with torch.no_grad():
        with_relative = model.get_position_attention_bias(16)
        model.base_model.position_bias.relative_attention_bias.weight.zero_()
        relative = with_relative - model.get_position_attention_bias(16)
    assert relative.abs().max() > 0.1
    for offset in range(-15, 16):
        diagonal = torch.diagonal(relative, offset=offset, dim1=1, dim2=2)  # entries with j - i == offset
        torch.testing.assert_close(diagonal, diagonal[:, :1].expand_as(diagonal), atol=1e-6, rtol=0)
    # distances at or beyond max_distance share one bucket per direction
    torch.testing.assert_close(relative[:, 0, 7], relative[:, 0, 15], atol=1e-6, rtol=0)


def test_positional_term_is_computed_once_per_forward():
    model = tupe_model(num_hidden_layers=4, num_hidden_groups=2, inner_group_num=2, sharing="attention")
    calls = []
    model.position_bias.register_forward_hook(lambda module, args, output: calls.append(args))
    with torch.no_grad():
        model(**padded_batch(99))
    assert len(calls) == 1


def test_token_type_ids_are_used():
    model = tupe_model()
    batch = padded_batch(99)
    with torch.no_grad():
        with_types = model(**batch).last_hidden_state
        batch["token_type_ids"] = torch.zeros_like(batch["token_type_ids"])
        without = model(**batch).last_hidden_state
    assert (with_types - without).abs().max() > 1e-3


def test_gradient_checkpointing_keeps_positional_gradients():
    gradients = []
    for checkpointing in (False, True):
        model = tupe_model(LiteBertForMaskedLM, relative_attention_num_buckets=8, relative_attention_max_distance=6)
        model.train()
        if checkpointing:
            model.activation_checkpointing_enable()
        batch = padded_batch(99)
        model(**batch, labels=batch["input_ids"]).loss.backward()
        gradients.append({n: p.grad.clone() for n, p in model.named_parameters() if "position_bias" in n})
    assert len(gradients[0]) == 9 and all(g.abs().sum() > 0 for g in gradients[0].values())
    for name, gradient in gradients[0].items():
        torch.testing.assert_close(gradients[1][name], gradient, atol=1e-6, rtol=0)


HEAD_INPUTS = {  # each head's inputs with labels, built from a padded batch of 3 rows
    LiteBertForPreTraining: lambda b: {**b, "labels": b["input_ids"], "sentence_order_label": torch.tensor([0, 1, 0])},
    LiteBertForMaskedLM: lambda b: {**b, "labels": b["input_ids"]},
    LiteBertForSequenceClassification: lambda b: {**b, "labels": torch.tensor([0, 1, 1])},
    LiteBertForTokenClassification: lambda b: {**b, "labels": b["attention_mask"]},
    LiteBertForQuestionAnswering: lambda b: {**b, "start_positions": torch.tensor([1, 2, 0]),
                                             "end_positions": torch.tensor([3, 2, 1])},
    LiteBertForMultipleChoice: lambda b: {**{k: v.unsqueeze(0) for k, v in b.items()}, "labels": torch.tensor([2])},
}


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("model_class", list(HEAD_INPUTS), ids=lambda cls: cls.__name__)
def test_reentrant_checkpointing_gives_the_gradients_of_no_checkpointing(model_class, variant):
    """The positional term is shared by every layer: reentrant recomputation must not backpropagate through it twice."""
    gradients = []
    for checkpointing in (None, {"use_reentrant": True}, {"use_reentrant": False}):
        model = tupe_model(model_class, num_hidden_groups=2, **VARIANTS[variant]).train()
        if checkpointing is not None:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpointing)
        model(**HEAD_INPUTS[model_class](padded_batch(99))).loss.backward()
        gradients.append({name: p.grad for name, p in model.named_parameters() if p.grad is not None})
    assert any("position_bias" in name for name in gradients[0])
    for checkpointed in gradients[1:]:
        assert checkpointed.keys() == gradients[0].keys()
        for name, gradient in gradients[0].items():
            torch.testing.assert_close(checkpointed[name], gradient, atol=1e-5, rtol=0, msg=name)


def test_flash_attention_is_refused_clearly():
    model = tupe_model()
    with pytest.raises(ValueError, match="flash attention takes no additive bias"):
        model.set_attn_implementation("flash_attention_2")


def test_position_ids_are_refused():
    with pytest.raises(ValueError, match="position_ids cannot be given with position_embedding_type='tupe'"):
        tupe_model()(input_ids=torch.ones(1, 4, dtype=torch.long), position_ids=torch.arange(4)[None])


def test_absolute_model_has_no_position_attention_bias():
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="needs position_embedding_type='tupe'"):
        LiteBertModel(LiteBertConfig(**tiny_config_kwargs())).get_position_attention_bias(8)


REMOTE = """
import sys
sys.modules["litebert"] = None
import torch, transformers
from safetensors.torch import load_file, save_file
folder, io = sys.argv[1], sys.argv[2]
model = transformers.AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True).eval()
with torch.no_grad():
    save_file({"logits": model(**load_file(io + "/in.safetensors")).logits}, io + "/out.safetensors")
"""


def test_save_reload_and_remote_code_reproduce_tupe_outputs(tmp_path):
    model = tupe_model(LiteBertForSequenceClassification, relative_attention_num_buckets=8,
                       relative_attention_max_distance=6)
    folder = tmp_path / "tupe-r"
    model.save_pretrained(folder)
    batch = padded_batch(99)
    with torch.no_grad():
        expected = model(**batch).logits
        reloaded = LiteBertForSequenceClassification.from_pretrained(folder).eval()
        torch.testing.assert_close(reloaded(**batch).logits, expected, atol=1e-6, rtol=0)
    save_file(batch, str(tmp_path / "in.safetensors"))
    subprocess.run([sys.executable, "-c", REMOTE, str(folder), str(tmp_path)], check=True, cwd=tmp_path)
    torch.testing.assert_close(load_file(str(tmp_path / "out.safetensors"))["logits"], expected, atol=1e-6, rtol=0)
