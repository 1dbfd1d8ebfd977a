"""ONNX export (torch.onnx, dynamo) of every position mode on every exportable attention backend, run by onnxruntime."""

import onnxruntime
import pytest
import torch

from litebert import LiteBertConfig, LiteBertForSequenceClassification, LiteBertModel

from conftest import POSITION_MODES, padded_batch, tiny_config_kwargs

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def export_and_load(model, path):
    sample = padded_batch(99, batch_size=2, length=7)
    axes = {0: "batch", 1: "sequence"}
    torch.onnx.export(
        model,
        (),
        path,
        kwargs={name: sample[name] for name in INPUT_NAMES},
        input_names=list(INPUT_NAMES),
        dynamic_shapes={name: axes for name in INPUT_NAMES},
        dynamo=True,
    )
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("mode", POSITION_MODES)
def test_export_matches_pytorch_on_other_shapes(mode, implementation, tmp_path):
    torch.manual_seed(0)
    config = LiteBertConfig(**tiny_config_kwargs(num_hidden_layers=2, **POSITION_MODES[mode]),
                            attn_implementation=implementation)
    model = LiteBertModel(config, add_pooling_layer=False).eval()
    session = export_and_load(model, tmp_path / "model.onnx")
    batch = padded_batch(99, batch_size=3, length=11, seed=1)  # another batch size and length than the export's
    (exported,) = session.run(None, {name: batch[name].numpy() for name in INPUT_NAMES})
    with torch.no_grad():
        expected = model(**batch).last_hidden_state
    real = batch["attention_mask"].bool()  # padding rows are zeros in PyTorch's padding-free path, not in the graph
    torch.testing.assert_close(torch.from_numpy(exported)[real], expected[real], atol=1e-4, rtol=0)


def test_flex_attention_export_names_the_backends_to_use(tmp_path):
    torch.manual_seed(0)
    config = LiteBertConfig(
        **tiny_config_kwargs(num_hidden_layers=2, position_embedding_type="tupe"), attn_implementation="flex_attention"
    )
    model = LiteBertForSequenceClassification(config).eval()
    batch = padded_batch(99, batch_size=2, length=7)
    with torch.no_grad():
        flex_logits = model(**batch).logits
    with pytest.raises(Exception, match=r"set_attn_implementation\('sdpa'\)"):
        export_and_load(model, tmp_path / "flex.onnx")
    model.set_attn_implementation("sdpa")
    session = export_and_load(model, tmp_path / "sdpa.onnx")
    (logits,) = session.run(None, {name: batch[name].numpy() for name in INPUT_NAMES})
    torch.testing.assert_close(torch.from_numpy(logits), flex_logits, atol=1e-4, rtol=0)
