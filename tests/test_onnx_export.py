"""`litebert.onnx` and `litebert-export`: every head exports and onnxruntime reproduces PyTorch, the runners classify
and answer as PyTorch does, the command leaves a self-contained folder, the int8 model keeps a real SST-2 classifier's
dev accuracy, and bad options are refused. (The command's one-line errors: tests/test_cli_errors.py.)"""

import contextlib
import io
import json
import shutil

import numpy as np
import onnx
import pytest
import torch
from transformers import AutoTokenizer, BertForSequenceClassification

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
from litebert.cli import export as export_script
from litebert.convert import bert_to_litebert
from litebert.onnx import (
    INT8_FILE,
    ONNX_FILE,
    OnnxClassifier,
    OnnxModel,
    OnnxQuestionAnswerer,
    export,
    require,
    session,
    session_outputs,
)
from litebert.tasks.glue import read_glue_tsv
from litebert.tasks.squad import postprocess_predictions, prepare_validation_features, read_squad

from conftest import POSITION_MODES, padded_batch, tiny_config_kwargs

# Each head once (LiteBertForMaskedLM as what LiteBertForPreTraining exports; LiteBertForSequenceClassification as
# the real SST-2 classifier below, absolute positions on eager, through the command): with it, each position mode on
# both backends.
HEAD_CASES = {
    LiteBertModel: ("absolute", "sdpa"),
    LiteBertForPreTraining: ("tupe-a", "sdpa"),
    LiteBertForTokenClassification: ("tupe-r", "eager"),
    LiteBertForQuestionAnswering: ("tupe-a", "eager"),
    LiteBertForMultipleChoice: ("tupe-r", "sdpa"),
}
OPSETS = {LiteBertModel: 18}  # the others: the default, 23 (attention as ONNX's Attention operator)
LABELS = {0: "negative", 1: "positive"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory, wordpiece_tokenizer):
    """head class -> (the PyTorch model the graph must reproduce, the folder `export` wrote, its report), exported
    once per module. A pretraining model must export as the masked-LM model that loads from its saved folder."""
    folders = {}

    def export_head(head):
        if head not in folders:
            mode, implementation = HEAD_CASES[head]
            torch.manual_seed(0)
            config = LiteBertConfig(**tiny_config_kwargs(
                vocab_size=wordpiece_tokenizer.vocab_size, num_hidden_layers=1, num_attention_heads=2,
                max_position_embeddings=128, pad_token_id=wordpiece_tokenizer.pad_token_id, id2label=LABELS,
                **POSITION_MODES[mode]))
            model = head(config).eval()
            out = tmp_path_factory.mktemp(head.__name__)
            report = export(model, out, opset=OPSETS.get(head), attn_implementation=implementation,
                            tokenizer=wordpiece_tokenizer, progress=None)
            if head is LiteBertForPreTraining:
                saved = tmp_path_factory.mktemp("pretraining")
                model.save_pretrained(saved)
                model = LiteBertForMaskedLM.from_pretrained(saved).eval()
            folders[head] = model, out, report
        return folders[head]

    return export_head


def real_token_difference(expected, actual, attention_mask):
    """max |actual - expected|, at real tokens for outputs per token."""
    real = attention_mask.astype(bool)
    difference = np.abs(actual - expected)
    return float((difference[real] if difference.shape[:real.ndim] == real.shape else difference).max())


@pytest.mark.parametrize("head", HEAD_CASES, ids=lambda head: f"{head.__name__}-{'-'.join(HEAD_CASES[head])}")
def test_every_head_exports_and_onnxruntime_matches_pytorch_on_new_shapes(head, exported):
    model, out, report = exported(head)
    assert report.model_class == type(model).__name__ and report.opset == OPSETS.get(head, 23)
    assert max(report.max_difference.values()) <= 1e-4
    inference = session(out / ONNX_FILE)
    assert all(isinstance(axis, str) for graph_input in inference.get_inputs() for axis in graph_input.shape)
    batch = padded_batch(model.config.vocab_size, batch_size=4, length=10, seed=7)  # not the shapes export used
    if head is LiteBertForMultipleChoice:
        batch = {name: torch.stack([tensor, tensor.roll(1, dims=0), tensor.flip(0)], dim=1)
                 for name, tensor in batch.items()}
    with torch.no_grad():
        expected = model(**batch, return_dict=True)
    outputs = session_outputs(inference, {name: tensor.numpy() for name, tensor in batch.items()})
    assert list(outputs) == list(expected.keys())
    for name, value in expected.items():
        assert real_token_difference(value.numpy(), outputs[name], batch["attention_mask"].numpy()) <= 1e-4, name
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == [type(model).__name__] and (out / "tokenizer.json").is_file()


def test_the_question_answerer_finds_the_spans_pytorch_finds_over_several_windows(exported, wordpiece_tokenizer,
                                                                                 shared_data):
    model, out, _ = exported(LiteBertForQuestionAnswering)
    examples = read_squad(shared_data / "squad" / "dev-v1.1.json").examples[:5]
    questions, contexts = [ex["question"] for ex in examples], [ex["context"] for ex in examples]
    answers = OnnxQuestionAnswerer(out).answer_all(questions, contexts, max_seq_length=64, doc_stride=16,
                                                   batch_size=4)

    # PyTorch over the same windows, all in one padded batch, through the same SQuAD post-processing
    columns = {"id": [str(i) for i in range(len(examples))], "question": questions, "context": contexts}
    features = prepare_validation_features(columns, wordpiece_tokenizer, 64, 16)
    assert len(features["input_ids"]) > 2 * len(examples)  # long contexts: several windows each
    padded = wordpiece_tokenizer.pad({name: features[name] for name in ("input_ids", "attention_mask",
                                                                        "token_type_ids")}, return_tensors="pt")
    with torch.no_grad():
        outputs = model(**padded)
    expected, _, nbest = postprocess_predictions(columns, features, outputs.start_logits.numpy(),
                                                 outputs.end_logits.numpy())
    assert [answer["answer"] for answer in answers] == [expected[qid] for qid in columns["id"]]
    np.testing.assert_allclose([answer["score"] for answer in answers],
                               [nbest[qid][0]["probability"] for qid in columns["id"]], atol=1e-4)
    single = OnnxQuestionAnswerer(out).answer(questions[0], contexts[0], max_seq_length=64, doc_stride=16)
    assert single == answers[0]


@pytest.fixture(scope="module")
def sst2_folder(minilm_folder, shared_data, tmp_path_factory):
    """A real SST-2 classifier, saved with its tokenizer: all-MiniLM-L6-v2 converted to LiteBERT and fine-tuned end
    to end for 40 steps of 32 SST-2 training sentences (the word embeddings frozen to keep the steps cheap; about
    0.79 dev accuracy)."""
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(minilm_folder)
    model = bert_to_litebert(BertForSequenceClassification.from_pretrained(minilm_folder, id2label=LABELS))
    model.litebert.embeddings.word_embeddings.weight.requires_grad_(False)
    steps, batch_size = 40, 32
    train = read_glue_tsv(shared_data / "glue" / "SST-2" / "train.tsv", "sst2", labelled=True)[:steps * batch_size]
    optimizer = torch.optim.AdamW([weight for weight in model.parameters() if weight.requires_grad], lr=2e-4)
    warm_up_then_decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1, (step + 1) / 4)
                                                           * (1 - step / steps))
    model.train()
    for start in range(0, len(train), batch_size):
        rows = train[start:start + batch_size]
        batch = tokenizer([row["sentence1"] for row in rows], padding=True, truncation=True, max_length=64,
                          return_tensors="pt")
        model(**batch, labels=torch.tensor([row["label"] for row in rows])).loss.backward()
        optimizer.step()
        warm_up_then_decay.step()
        optimizer.zero_grad()
    folder = tmp_path_factory.mktemp("sst2-minilm")
    model.eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def sst2_exported(sst2_folder, tmp_path_factory):
    """`litebert-export FOLDER OUT --quantize int8` of the SST-2 classifier: OUT and what the command printed."""
    out = tmp_path_factory.mktemp("export") / "sst2-onnx"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        export_script.main([str(sst2_folder), str(out), "--quantize", "int8", "--attn_implementation", "eager"])
    return out, printed.getvalue()


def test_the_command_writes_a_self_contained_folder_and_prints_the_differences(sst2_exported, sst2_folder,
                                                                              tmp_path):
    out, printed = sst2_exported
    lines = printed.splitlines()
    fp32_line = next(line for line in lines if line.startswith("max |ONNX - PyTorch| (fp32): logits "))
    assert float(fp32_line.split("logits ")[1]) <= 1e-4
    assert any(line.startswith("max |int8 ONNX - PyTorch|: logits ") for line in lines)
    assert f"Wrote {out} (LiteBertForSequenceClassification, opset 23): " in printed
    assert {ONNX_FILE, INT8_FILE, "config.json", "tokenizer.json"} <= {path.name for path in out.iterdir()}
    # int8 matrix products everywhere but in the embedding projection, which stays a float MatMul
    int8_graph = onnx.load(out / INT8_FILE).graph
    projection = {node.op_type for node in int8_graph.node
                  if any(".embeddings.projection:" in entry.value for entry in node.metadata_props)}
    assert projection == {"MatMul", "Add"}
    assert sum(node.op_type == "MatMulInteger" for node in int8_graph.node) == 6 * 4 + 2  # 6 layers, pooler, head

    copied = shutil.copytree(out, tmp_path / "elsewhere")  # self-contained: nothing refers back to FOLDER
    assert OnnxClassifier(copied).classify(["a gripping, funny film"])[0]["label"] == "positive"


def test_the_classifier_labels_texts_and_pairs_as_pytorch_does(sst2_exported, sst2_folder):
    out, _ = sst2_exported
    classifier = OnnxClassifier(out)
    model = LiteBertForSequenceClassification.from_pretrained(sst2_folder).eval()
    texts = ["a gripping, funny film", "dull", "the plot wanders for two hours and never finds its way home", "ok"]
    pairs = [("A cat sat on the mat.", "A cat is sitting."), ("It rained.", "The ground is dry and dusty.")]
    for inputs in (texts, pairs):
        firsts, seconds = zip(*inputs) if isinstance(inputs[0], tuple) else (inputs, None)
        encoded = classifier.tokenizer(list(firsts), list(seconds) if seconds else None, padding=True,
                                       return_tensors="pt")
        with torch.no_grad():
            probabilities = model(**encoded).logits.softmax(-1)
        results = classifier.classify(inputs, batch_size=3)  # batches sorted by length, results in the given order
        assert [result["label"] for result in results] == [LABELS[int(i)] for i in probabilities.argmax(-1)]
        np.testing.assert_allclose([result["score"] for result in results], probabilities.max(-1).values.numpy(),
                                   atol=1e-5)
    assert classifier.classify([]) == []
    with pytest.raises(ValueError, match="texts or \\(text, text pair\\) tuples, not both"):
        classifier.classify(["one text", ("a", "pair")])


def test_int8_keeps_the_sst2_dev_accuracy_of_a_real_classifier_within_one_point(sst2_exported, shared_data):
    out, _ = sst2_exported
    dev = read_glue_tsv(shared_data / "glue" / "SST-2" / "dev.tsv", "sst2", labelled=True)
    texts, gold = [row["sentence1"] for row in dev], np.array([LABELS[row["label"]] for row in dev])
    accuracy = {}
    for quantized in (False, True):
        labels = [result["label"] for result in OnnxClassifier(out, quantized).classify(texts, 64)]
        accuracy[quantized] = float(np.mean(np.array(labels) == gold))
    assert accuracy[False] > 0.75  # a real classifier: the majority class is 0.51 of dev
    assert abs(accuracy[True] - accuracy[False]) <= 0.01, accuracy


def test_unsupported_options_are_refused_naming_what_is_allowed(exported, tmp_path):
    model = LiteBertModel(LiteBertConfig(**tiny_config_kwargs(num_hidden_layers=1)))
    with pytest.raises(ValueError, match="quantize='int4' is not supported: the one quantization is int8"):
        export(model, tmp_path, quantize="int4")
    with pytest.raises(ValueError, match="opset 12 is not supported: choose 18 to 23"):
        export(model, tmp_path, opset=12)
    with pytest.raises(ValueError, match="attn_implementation='flex_attention' cannot be exported.*sdpa"):
        export(model, tmp_path, attn_implementation="flex_attention")
    model.set_attn_implementation("flex_attention")
    with pytest.raises(ValueError, match="runs on flex_attention.*attn_implementation='sdpa'"):
        export(model, tmp_path, progress=None)
    assert model.config._attn_implementation == "flex_attention"  # switching to sdpa happens on a copy
    assert not any(tmp_path.iterdir())

    _, question_answering, _ = exported(LiteBertForQuestionAnswering)
    with pytest.raises(ValueError, match="holds an exported LiteBertForQuestionAnswering; OnnxClassifier runs "
                                         "LiteBertForSequenceClassification exports"):
        OnnxClassifier(question_answering)
    with pytest.raises(FileNotFoundError, match=f"{INT8_FILE} is missing: write it with `litebert-export MODEL "
                                                f".* --quantize int8`"):
        OnnxQuestionAnswerer(question_answering, quantized=True)
    too_long = np.full((1, 129), 7)
    with pytest.raises(ValueError, match="Sequence length 129 exceeds max_position_embeddings=128; truncate"):
        OnnxModel(question_answering)({"input_ids": too_long, "attention_mask": np.ones_like(too_long)})


def test_a_missing_onnxruntime_names_the_install_command(monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "onnxruntime" else find_spec(name))
    with pytest.raises(ImportError, match=r"onnxruntime is not installed.*pip install 'litebert\[onnx\]'"):
        require("onnx", "onnxruntime")
