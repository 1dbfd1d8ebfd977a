"""Saving, Auto classes, pipelines, and loading with stock transformers in a process without litebert."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel, AutoTokenizer, pipeline

import litebert
from litebert import LiteBertConfig, LiteBertForPreTraining
from litebert.modeling_litebert import AUTO_CLASSES

from conftest import padded_batch, tiny_config_kwargs


def tiny(model_class, **overrides):
    torch.manual_seed(0)
    return model_class(LiteBertConfig(**tiny_config_kwargs(**overrides))).eval()


@pytest.mark.parametrize("auto_name", list(AUTO_CLASSES))
def test_auto_classes_resolve_to_litebert(auto_name):
    config = LiteBertConfig(**tiny_config_kwargs())
    model = getattr(transformers, auto_name).from_config(config)
    assert type(model) is AUTO_CLASSES[auto_name]
    assert isinstance(AutoConfig.for_model("litebert"), LiteBertConfig)


@pytest.mark.parametrize("model_class", list(AUTO_CLASSES.values()), ids=lambda c: c.__name__)
def test_save_and_load_round_trip_is_exact_and_safetensors_only(model_class, tmp_path):
    model = tiny(model_class, sharing="ffn", num_hidden_groups=2)
    model.save_pretrained(tmp_path)
    files = {path.name for path in tmp_path.iterdir()}
    assert "model.safetensors" in files
    assert not any(name.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt")) for name in files)
    loaded = model_class.from_pretrained(tmp_path).eval()
    for (name, mine), (_, theirs) in zip(loaded.state_dict().items(), model.state_dict().items(), strict=True):
        assert torch.equal(mine, theirs), name
    batch = padded_batch(99)
    if model_class.__name__.endswith("MultipleChoice"):
        batch = {name: value.unsqueeze(0) for name, value in batch.items()}
    with torch.no_grad():
        # weights are bit-identical; outputs may differ in the last bit with memory alignment of the BLAS kernels
        torch.testing.assert_close(loaded(**batch)[0], model(**batch)[0], atol=1e-6, rtol=0)


def test_saved_config_lists_every_head_in_auto_map(tmp_path):
    tiny(LiteBertForPreTraining).save_pretrained(tmp_path)
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map["AutoConfig"] == "configuration_litebert.LiteBertConfig"
    for auto_name, model_class in AUTO_CLASSES.items():
        assert auto_map[auto_name] == f"modeling_litebert.{model_class.__name__}"
    assert {"modeling_litebert.py", "configuration_litebert.py"} <= {p.name for p in tmp_path.iterdir()}


@pytest.mark.parametrize("module", ["modeling_litebert.py", "modeling_tnf.py", "configuration_litebert.py"])
def test_modeling_code_imports_only_torch_transformers_and_siblings(module):
    source = litebert.__path__[0] + "/" + module
    imports = [line.split()[1] for line in open(source) if line.startswith(("import ", "from "))]
    allowed = ("torch", "transformers", "huggingface_hub", ".", "collections", "contextlib", "copy", "dataclasses",
               "math", "os")
    assert all(name.startswith(allowed) for name in imports), imports


# Written independently of litebert.remote_code: a fresh interpreter where `import litebert` raises.
WITHOUT_LITEBERT = """
import sys
sys.modules["litebert"] = None
try:
    import litebert
    raise SystemExit("litebert should not be importable here")
except ImportError:
    pass
import torch, transformers
from safetensors.torch import load_file, save_file
folder, io = sys.argv[1], sys.argv[2]
inputs = load_file(io + "/inputs.safetensors")
results = {}
for auto_name in sys.argv[3:]:
    model = getattr(transformers, auto_name).from_pretrained(folder, trust_remote_code=True).eval()
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    batch = inputs if "MultipleChoice" not in auto_name else {k: v.unsqueeze(0) for k, v in inputs.items()}
    with torch.no_grad():
        results[auto_name] = model(**batch)[0].contiguous()
save_file(results, io + "/outputs.safetensors")
"""


def test_pretraining_folder_loads_into_every_auto_class_without_the_package(tmp_path):
    """A TNF pretraining folder: its note dictionary lives in modeling_tnf.py, which must travel with the code."""
    folder = tmp_path / "model"
    model = tiny(LiteBertForPreTraining, sharing="attention", tnf_enabled=True, tnf_num_rare_words=3)
    model.save_pretrained(folder)
    assert (folder / "modeling_tnf.py").read_text() == (Path(litebert.__path__[0]) / "modeling_tnf.py").read_text()
    batch = padded_batch(99)
    save_file(batch, str(tmp_path / "inputs.safetensors"))
    subprocess.run(
        [sys.executable, "-c", WITHOUT_LITEBERT, str(folder), str(tmp_path), *AUTO_CLASSES],
        check=True,
        cwd=tmp_path,
        capture_output=True,
    )
    results = load_file(str(tmp_path / "outputs.safetensors"))
    with torch.no_grad():
        expected = model(**batch)
        for auto_name, model_class in AUTO_CLASSES.items():
            local = model_class.from_pretrained(folder).eval()
            torch.manual_seed(0)
            inputs = batch if "MultipleChoice" not in auto_name else {k: v.unsqueeze(0) for k, v in batch.items()}
            local_output = local(**inputs)[0]
            if auto_name in ("AutoModel", "AutoModelForPreTraining", "AutoModelForMaskedLM"):
                # these carry only saved weights, so outputs must agree (new heads are freshly initialised)
                torch.testing.assert_close(results[auto_name], local_output, atol=1e-6, rtol=0)
            assert results[auto_name].shape == local_output.shape, auto_name
        torch.testing.assert_close(results["AutoModelForPreTraining"], expected.prediction_logits, atol=1e-6, rtol=0)


def test_pipelines_run_on_a_saved_folder(tmp_path, minilm_folder):
    tokenizer = AutoTokenizer.from_pretrained(minilm_folder)
    shape = tiny_config_kwargs(vocab_size=tokenizer.vocab_size, max_position_embeddings=128)
    for task, model_class in (
        ("fill-mask", litebert.LiteBertForMaskedLM),
        ("text-classification", litebert.LiteBertForSequenceClassification),
        ("token-classification", litebert.LiteBertForTokenClassification),
    ):  # transformers 5 removed the question-answering pipeline; QA inference lives in litebert.tasks.squad
        folder = tmp_path / task
        torch.manual_seed(0)
        model_class(LiteBertConfig(**shape)).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        runner = pipeline(task, model=str(folder), device="cpu")
        if task == "fill-mask":
            predictions = runner("The capital of France is [MASK].")
            assert len(predictions) == 5 and all("token_str" in p for p in predictions)
            reference = AutoModel.from_pretrained(folder)
            assert type(reference).__name__ == "LiteBertModel"
        elif task == "text-classification":
            prediction = runner("A delightful film.")[0]
            assert prediction["label"] in ("LABEL_0", "LABEL_1") and 0 <= prediction["score"] <= 1
        else:
            entities = runner("Ada Lovelace lived in London.")
            assert all(entity["entity"] in ("LABEL_0", "LABEL_1") for entity in entities)
