"""ONNX export of LiteBERT models, checked against PyTorch with onnxruntime, and onnxruntime runners for the exported
folders: text classification and extractive question answering.

    from litebert.onnx import OnnxClassifier, export

    export("runs/sst2", "runs/sst2-onnx", quantize="int8")  # model.onnx, model.int8.onnx, config, tokenizer
    OnnxClassifier("runs/sst2-onnx", quantized=True).classify(["a gripping, funny film"])  # [{"label", "score"}]

Every head of `HEADS` exports (a `LiteBertForPreTraining` as the `LiteBertForMaskedLM` it serves), in every position
mode, from the `eager` and `sdpa` attention backends; batch and sequence axes (and the choices of multiple choice) are
dynamic. The export, the check and the runners need `pip install 'litebert[onnx]'` (onnx, onnxscript, onnxruntime).
"""

import copy
import importlib.util
import logging
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from transformers import AutoConfig, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from .configuration_litebert import LiteBertConfig
from .modeling_litebert import (
    HEADS,
    LiteBertForMaskedLM,
    LiteBertForMultipleChoice,
    LiteBertForPreTraining,
    LiteBertForQuestionAnswering,
    LiteBertForSequenceClassification,
)
from .tasks.squad import postprocess_predictions, prepare_validation_features

if TYPE_CHECKING:
    from onnxruntime import InferenceSession

ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
QUANTIZATIONS = ("int8",)
EXPORTABLE_ATTENTION = ("eager", "sdpa")  # flex_attention is a compiled kernel that torch.export cannot trace
# 18 is the lowest opset of torch.onnx's operator library (it writes 18 when asked for less), 23 the highest it
# declares. 23 is the default: attention becomes ONNX's Attention operator, which onnxruntime (from 1.23) runs as one
# kernel instead of a chain of matrix products, masks and transposes (on this project's CPU about 20% faster, fp32 and
# int8 alike).
OPSETS = range(18, 24)
DEFAULT_OPSET = 23
FP32_MODULES = ("embeddings.projection",)  # left out of the int8 quantization: see quantize_int8
MAX_DIFFERENCE = 1e-4  # largest |ONNX - PyTorch| an fp32 export may show on the check inputs
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
EXPORT_MODULES = ("onnx", "onnxscript", "onnxruntime")  # torch.onnx writes with the first two; the check runs the third
INSTALL_HINT = "pip install 'litebert[onnx]' (or: pip install onnx onnxscript onnxruntime)"
# (batch, sequence length, choices) of the traced inputs, and of the two checks, which must differ from them
TRACE_SHAPE = (2, 8, 2)
CHECK_SHAPES = ((3, 13, 3), (1, 6, 2))
HEAD_CLASSES = {model_class.__name__: model_class for model_class, _, _ in HEADS}


@dataclass
class ExportReport:
    """What `export` wrote and how far each output of the exported graphs lies from PyTorch's (max |diff| over the
    real tokens of the check inputs)."""

    folder: Path
    model_class: str
    opset: int
    max_difference: dict[str, float]
    int8_max_difference: dict[str, float] | None = None



def require(*modules: str) -> None:
    """Refuse with the install command when one of these optional modules is missing: the package works without
    them, and they are imported only where export or inference needs them."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed; ONNX export "
                          f"and inference need them: {INSTALL_HINT}")


def onnxruntime_module() -> ModuleType:
    """onnxruntime, imported on first use."""
    require("onnxruntime")
    import onnxruntime

    return onnxruntime


def check_export_options(opset: int | None, quantize: str | None, attn_implementation: str | None) -> None:
    """Refuse what `export` cannot honour, naming the allowed values."""
    if opset is not None and opset not in OPSETS:
        raise ValueError(f"opset {opset} is not supported: choose {OPSETS.start} to {OPSETS.stop - 1} (the opsets "
                         f"torch.onnx exports to), or leave it out for {DEFAULT_OPSET}.")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize={quantize!r} is not supported: the one quantization is {', '.join(QUANTIZATIONS)} "
                         "(onnxruntime's dynamic int8 quantization).")
    if attn_implementation is not None and attn_implementation not in EXPORTABLE_ATTENTION:
        raise ValueError(f"attn_implementation={attn_implementation!r} cannot be exported: torch.export traces only "
                         f"{' and '.join(EXPORTABLE_ATTENTION)} (flex_attention is a compiled kernel it cannot trace; "
                         "sdpa and eager compute the same outputs from the same weights).")


def saved_class(config: LiteBertConfig, folder: Path) -> type[PreTrainedModel]:
    """The LiteBERT head a saved folder holds, by its config's architecture (LiteBertModel when it names none)."""
    name = (config.architectures or ["LiteBertModel"])[0]
    if name not in HEAD_CLASSES:
        raise ValueError(f"{folder} holds a {name}, which is no LiteBERT head; exportable: {', '.join(HEAD_CLASSES)}.")
    return HEAD_CLASSES[name]


def load_for_export(folder: str | Path, attn_implementation: str | None) -> PreTrainedModel:
    """The LiteBERT model of a saved folder on an exportable attention backend (sdpa unless told otherwise)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder.")
    config = AutoConfig.from_pretrained(folder)
    if config.model_type != LiteBertConfig.model_type:
        raise ValueError(f"{folder} holds a {config.model_type!r} model, not LiteBERT: convert it first with "
                         "litebert-convert.")
    return saved_class(config, folder).from_pretrained(folder, attn_implementation=attn_implementation or "sdpa")


def servable(model: PreTrainedModel, attn_implementation: str | None) -> PreTrainedModel:
    """The model as it is exported: a pretraining model becomes its masked-LM head (the same weights without the
    sentence-order head), and the attention backend is one torch.export can trace (switched on a copy: the caller's
    model stays as it is)."""
    if isinstance(model, LiteBertForPreTraining):
        masked_lm = LiteBertForMaskedLM(model.config)
        missing, _ = masked_lm.load_state_dict(model.state_dict(), strict=False)
        assert not missing, missing  # every masked-LM weight is one of the pretraining model's
        model = masked_lm
    if attn_implementation is not None and attn_implementation != model.config._attn_implementation:
        model = copy.deepcopy(model)
        model.set_attn_implementation(attn_implementation)
    implementation = model.config._attn_implementation
    if implementation not in EXPORTABLE_ATTENTION:
        raise ValueError(f"the model runs on {implementation}, which torch.export cannot trace: export it with "
                         f"attn_implementation='sdpa' (or 'eager'), which computes the same outputs from the same "
                         "weights.")
    return model.eval()


def sample_inputs(config: LiteBertConfig, shape: tuple[int, int, int], multiple_choice: bool,
                  seed: int = 0) -> dict[str, torch.Tensor]:
    """Random token ids of `shape` (batch, length, choices; choices only for multiple choice), each row right-padded
    by a different amount (the first not at all), two segments."""
    batch_size, length, choices = shape
    rows = batch_size * choices if multiple_choice else batch_size
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(min(5, config.vocab_size - 1), config.vocab_size, (rows, length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    step = max(1, (length - 1) // rows)
    for row in range(1, rows):
        attention_mask[row, max(1, length - row * step):] = 0
    input_ids = input_ids.masked_fill(attention_mask == 0, config.pad_token_id or 0)
    token_type_ids = torch.zeros_like(input_ids)
    if config.type_vocab_size > 1:
        token_type_ids[:, length // 2:] = 1
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
    if multiple_choice:
        inputs = {name: tensor.view(batch_size, choices, length) for name, tensor in inputs.items()}
    return inputs


class NamedOutputs(nn.Module):
    """A LiteBERT model with its three tensor inputs and a tuple of its named outputs, as torch.export traces it."""

    def __init__(self, model: PreTrainedModel, output_names: Sequence[str]):
        super().__init__()
        self.model = model
        self.output_names = tuple(output_names)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                             return_dict=True)
        return tuple(outputs[name] for name in self.output_names)


def pytorch_outputs(model: PreTrainedModel, inputs: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    with torch.inference_mode():
        outputs = model(**inputs, return_dict=True)
    return {name: value.numpy() for name, value in outputs.items()}


def largest_differences(expected: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray],
                        attention_mask: np.ndarray) -> dict[str, float]:
    """max |actual - expected| per output. Outputs per token are compared at real tokens only: PyTorch's padding-free
    path leaves padding positions at zero before the head, the graph computes them; neither is meaningful."""
    real = attention_mask.astype(bool)
    differences = {}
    for name, reference in expected.items():
        difference = np.abs(actual[name] - reference)
        if difference.shape[:real.ndim] == real.shape:
            difference = difference[real]
        differences[name] = float(difference.max())
    return differences


@contextmanager
def quiet_loggers(*names: str) -> Iterator[None]:
    """The named loggers report errors only, for the duration of a `with` block."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def write_onnx(model: PreTrainedModel, path: Path, output_names: Sequence[str], opset: int | None) -> int:
    """Trace `model` into one ONNX file at `path` with dynamic batch and sequence (and choices) axes; the opset used."""
    multiple_choice = isinstance(model, LiteBertForMultipleChoice)
    axes = {0: "batch", 1: "choices", 2: "sequence"} if multiple_choice else {0: "batch", 1: "sequence"}
    sample = sample_inputs(model.config, TRACE_SHAPE, multiple_choice)
    with warnings.catch_warnings(), quiet_loggers("torch.onnx", "torch.export", "onnxscript", "onnx_ir"):
        warnings.simplefilter("ignore")  # notes about axis naming and deprecations inside torch.export
        program = torch.onnx.export(
            NamedOutputs(model, output_names).eval(),
            tuple(sample[name] for name in INPUT_NAMES),
            input_names=list(INPUT_NAMES),
            output_names=list(output_names),
            dynamic_shapes={name: axes for name in INPUT_NAMES},
            opset_version=opset or DEFAULT_OPSET,
            dynamo=True,
            verbose=False,
        )
        program.save(path, external_data=False)  # one file, as long as the weights stay under protobuf's 2 GB
    return next(entry.version for entry in program.model_proto.opset_import if entry.domain == "")


def session(path: Path, threads: int | None = None, providers: Sequence[str] | None = None) -> "InferenceSession":
    """An onnxruntime session of one ONNX file (on the CPU unless `providers` says otherwise)."""
    onnxruntime = onnxruntime_module()
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(path), options, providers=list(providers or ["CPUExecutionProvider"]))


def session_outputs(inference: "InferenceSession", inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run a session on the inputs it declares (token_type_ids default to zeros: some tokenizers give none)."""
    feed = {}
    for declared in inference.get_inputs():
        value = inputs.get(declared.name)
        if value is None and declared.name == "token_type_ids":
            value = np.zeros_like(np.asarray(inputs["input_ids"]))
        feed[declared.name] = np.asarray(value, dtype=np.int64)
    names = [output.name for output in inference.get_outputs()]
    return dict(zip(names, inference.run(names, feed)))


def check_against_pytorch(model: PreTrainedModel, path: Path) -> dict[str, float]:
    """The largest difference of each output between the ONNX file and PyTorch over the check inputs (two shapes
    other than the traced one, with padding)."""
    inference = session(path)
    multiple_choice = isinstance(model, LiteBertForMultipleChoice)
    worst = {}
    for seed, shape in enumerate(CHECK_SHAPES, start=1):
        inputs = sample_inputs(model.config, shape, multiple_choice, seed=seed)
        numpy_inputs = {name: tensor.numpy() for name, tensor in inputs.items()}
        differences = largest_differences(pytorch_outputs(model, inputs), session_outputs(inference, numpy_inputs),
                                          numpy_inputs["attention_mask"])
        worst = {name: max(value, worst.get(name, 0.0)) for name, value in differences.items()}
    return worst


def quantize_int8(source: Path, destination: Path) -> None:
    """onnxruntime's dynamic quantization of the matrix products with weights: int8 weights with a scale per output
    channel (closer to fp32 than one per tensor), activations quantized per batch at run time. Attention's products
    of two activations stay fp32, and so does the embedding projection: its input, the embedding LayerNorm's output,
    has a few large outlier dimensions, and one int8 scale per batch for it lost a point of SST-2 accuracy, for
    1/70 of the matrix-product work of a 6-layer model."""
    require(*EXPORT_MODULES)
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with quiet_loggers("root"):  # it logs advice about pre-processing for each model
        quantize_dynamic(source, destination, weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul", "Gemm"], nodes_to_exclude=module_nodes(source, FP32_MODULES))


def module_nodes(path: Path, modules: Sequence[str]) -> list[str]:
    """The nodes of an exported graph that compute one of these submodules (by the module path torch.onnx records on
    each node as its "namespace")."""
    import onnx

    return [node.name for node in onnx.load(path).graph.node
            if any(entry.key == "namespace" and f".{module}:" in entry.value
                   for entry in node.metadata_props for module in modules)]


def describe(differences: Mapping[str, float]) -> str:
    return ", ".join(f"{name} {value:.2e}" for name, value in differences.items())


def copy_tokenizer(folder: Path | None, tokenizer: PreTrainedTokenizerBase | None, out_dir: Path) -> bool:
    """Save the tokenizer given, or the one in `folder`, into `out_dir`; False when there is none."""
    if tokenizer is None and folder is not None:
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder)
        except (OSError, ValueError):  # a folder with weights and config only
            tokenizer = None
    if tokenizer is None:
        return False
    tokenizer.save_pretrained(out_dir)
    return True


def export(
    model_or_folder: PreTrainedModel | str | Path,
    out_dir: str | Path,
    opset: int | None = None,
    quantize: str | None = None,
    attn_implementation: str | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    progress: Callable[[str], None] | None = print,
) -> ExportReport:
    """Export a LiteBERT model (or the saved folder of one) to `out_dir`/model.onnx, with its config and tokenizer,
    so that the folder is self-contained for `OnnxModel`.

    The graph is checked with onnxruntime against PyTorch on inputs of two shapes other than the traced one, with
    padding; above MAX_DIFFERENCE on any output the export is removed and a ValueError says by how much.
    `quantize="int8"` also writes model.int8.onnx (onnxruntime's dynamic quantization) and measures its difference
    the same way (no limit: int8 differs by design). `attn_implementation` (eager or sdpa) switches the backend
    first; a folder loads on sdpa by default. `opset` defaults to DEFAULT_OPSET. `progress` receives one line per step
    (None: silent).
    """
    check_export_options(opset, quantize, attn_implementation)
    require(*EXPORT_MODULES)
    say = progress or (lambda message: None)
    folder = None if isinstance(model_or_folder, PreTrainedModel) else Path(model_or_folder)
    if folder is not None:
        say(f"Loading {folder}")
    model = model_or_folder if folder is None else load_for_export(folder, attn_implementation)
    model = servable(model, attn_implementation)
    model_class = type(model).__name__
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in (ONNX_FILE, INT8_FILE):  # an earlier export's files must not pass for this one's
        (out_dir / stale).unlink(missing_ok=True)

    multiple_choice = isinstance(model, LiteBertForMultipleChoice)
    output_names = list(pytorch_outputs(model, sample_inputs(model.config, TRACE_SHAPE, multiple_choice)))
    path = out_dir / ONNX_FILE
    say(f"Exporting {model_class} ({model.config._attn_implementation} attention, outputs "
        f"{', '.join(output_names)}) to {path}")
    start = time.perf_counter()
    used_opset = write_onnx(model, path, output_names, opset)
    say(f"Exported with opset {used_opset} in {time.perf_counter() - start:.1f} s; checking with onnxruntime")
    differences = check_against_pytorch(model, path)
    say(f"max |ONNX - PyTorch| (fp32): {describe(differences)}")
    worst = max(differences.values())
    if worst > MAX_DIFFERENCE:
        path.unlink()
        raise ValueError(f"the exported graph differs from PyTorch by up to {worst:.2e} (more than {MAX_DIFFERENCE:g}: "
                         f"{describe(differences)}); {path} was removed.")

    config = copy.deepcopy(model.config)
    config.architectures = [model_class]
    config.save_pretrained(out_dir)
    if not copy_tokenizer(folder, tokenizer, out_dir):
        say(f"No tokenizer found: {out_dir} holds no tokenizer, which OnnxModel needs; pass tokenizer=... or save one "
            "there.")
    report = ExportReport(out_dir, model_class, used_opset, differences)
    if quantize == "int8":
        int8_path = out_dir / INT8_FILE
        say(f"Quantizing to int8: {int8_path}")
        quantize_int8(path, int8_path)
        report.int8_max_difference = check_against_pytorch(model, int8_path)
        say(f"max |int8 ONNX - PyTorch|: {describe(report.int8_max_difference)}")
    return report


class OnnxModel:
    """An exported folder (see `export`) run by onnxruntime with its own config and tokenizer.

    `quantized` runs model.int8.onnx instead of model.onnx; `threads` sets onnxruntime's intra-op threads (default:
    onnxruntime's choice); `providers` its execution providers (default: the CPU).
    """

    head: type[PreTrainedModel] | None = None  # the head a subclass runs; None: any

    def __init__(self, folder: str | Path, quantized: bool = False, threads: int | None = None,
                 providers: Sequence[str] | None = None):
        self.folder = Path(folder)
        path = self.folder / (INT8_FILE if quantized else ONNX_FILE)
        if not path.is_file():
            flag = " --quantize int8" if quantized else ""
            raise FileNotFoundError(f"{path} is missing: write it with `litebert-export MODEL {self.folder}{flag}`.")
        self.config = AutoConfig.from_pretrained(self.folder)
        exported = (self.config.architectures or ["LiteBertModel"])[0]
        if self.head is not None and exported != self.head.__name__:
            raise ValueError(f"{self.folder} holds an exported {exported}; {type(self).__name__} runs "
                             f"{self.head.__name__} exports.")
        self.tokenizer = AutoTokenizer.from_pretrained(self.folder)
        self.session = session(path, threads, providers)

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The model's outputs by name for tokenized, padded inputs (numpy arrays, or lists of equal length)."""
        length = np.shape(inputs["input_ids"])[-1]
        if length > self.max_length:  # onnxruntime would fail on a broadcast deep inside the graph
            raise ValueError(f"Sequence length {length} exceeds max_position_embeddings={self.max_length}; truncate "
                             f"the inputs (tokenizer(..., truncation=True, max_length={self.max_length})).")
        return session_outputs(self.session, inputs)

    @property
    def max_length(self) -> int:
        return self.config.max_position_embeddings

    def batches(self, encodings: Mapping[str, list[list[int]]], batch_size: int) -> list[tuple[list[int], dict]]:
        """Encoded rows grouped into padded batches of similar lengths (less padding, which the graph computes
        in full): (row indices, padded numpy inputs) per batch."""
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be at least 1.")
        order = sorted(range(len(encodings["input_ids"])), key=lambda row: len(encodings["input_ids"][row]))
        names = [name for name in INPUT_NAMES if name in encodings]
        batches = []
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            padded = self.tokenizer.pad({name: [encodings[name][row] for row in rows] for name in names},
                                        return_tensors="np")
            batches.append((rows, dict(padded)))
        return batches


class OnnxClassifier(OnnxModel):
    """Text classification with an exported `LiteBertForSequenceClassification`, labelled by its config's id2label."""

    head = LiteBertForSequenceClassification

    def classify(self, texts: Sequence[str | tuple[str, str]], batch_size: int = 32) -> list[dict]:
        """{"label", "score"} per text (a string, or a (text, text pair) tuple), in the order given. The score is the
        label's probability (softmax; sigmoid for multi-label models, whose best label is given), or the predicted
        value of a regression model (num_labels 1)."""
        if isinstance(texts, str):
            raise TypeError("classify takes a list of texts (or of text pairs); wrap a single text in a list.")
        if not texts:
            return []
        pairs = not isinstance(texts[0], str)
        if any(isinstance(text, str) == pairs for text in texts):
            raise ValueError("classify takes texts or (text, text pair) tuples, not both in one call.")
        firsts = [text[0] for text in texts] if pairs else list(texts)
        seconds = [text[1] for text in texts] if pairs else None
        encodings = self.tokenizer(firsts, seconds, truncation=True, max_length=self.max_length)
        logits = np.zeros((len(texts), self.config.num_labels), dtype=np.float32)
        for rows, inputs in self.batches(encodings, batch_size):
            logits[rows] = self(inputs)["logits"]
        return [self.label(row) for row in logits]

    def label(self, logits: np.ndarray) -> dict:
        if self.config.num_labels == 1:
            return {"label": self.config.id2label[0], "score": float(logits[0])}
        if self.config.problem_type == "multi_label_classification":
            scores = 1 / (1 + np.exp(-logits))
        else:
            scores = np.exp(logits - logits.max())
            scores /= scores.sum()
        best = int(scores.argmax())
        return {"label": self.config.id2label[best], "score": float(scores[best])}


class OnnxQuestionAnswerer(OnnxModel):
    """Extractive question answering with an exported `LiteBertForQuestionAnswering`: a long context is read in
    overlapping windows, and the answer is the best span over all of them (the SQuAD post-processing of
    `litebert.tasks.squad`)."""

    head = LiteBertForQuestionAnswering

    def answer(self, question: str, context: str, **options: int) -> dict:
        """{"answer": the span of `context`, "score": its probability among the n-best spans}; `options` as for
        `answer_all`."""
        return self.answer_all([question], [context], **options)[0]

    def answer_all(self, questions: Sequence[str], contexts: Sequence[str], max_seq_length: int | None = None,
                   doc_stride: int | None = None, max_query_length: int = 64, n_best_size: int = 20,
                   max_answer_length: int = 30, batch_size: int = 32) -> list[dict]:
        """The answer to each question in its context. Windows hold `max_seq_length` tokens (default 384, at most
        the model's positions) and overlap by `doc_stride` context tokens (default a third of a window)."""
        if len(questions) != len(contexts):
            raise ValueError(f"{len(questions)} questions but {len(contexts)} contexts: give one context per question.")
        max_seq_length = min(max_seq_length or 384, self.max_length)
        doc_stride = max_seq_length // 3 if doc_stride is None else doc_stride
        examples = {"id": [str(number) for number in range(len(questions))], "question": list(questions),
                    "context": list(contexts)}
        features = prepare_validation_features(examples, self.tokenizer, max_seq_length, doc_stride, max_query_length)
        windows = len(features["input_ids"])
        longest = max(len(ids) for ids in features["input_ids"])
        start_logits = np.full((windows, longest), -np.inf, dtype=np.float32)  # past a window's end: no position
        end_logits = start_logits.copy()
        for rows, inputs in self.batches(features, batch_size):
            outputs = self(inputs)
            width = outputs["start_logits"].shape[1]
            start_logits[rows, :width], end_logits[rows, :width] = outputs["start_logits"], outputs["end_logits"]
        predictions, _, nbest = postprocess_predictions(examples, features, start_logits, end_logits,
                                                        n_best_size=n_best_size, max_answer_length=max_answer_length)
        return [{"answer": predictions[qid], "score": nbest[qid][0]["probability"] if nbest[qid] else 0.0}
                for qid in examples["id"]]
