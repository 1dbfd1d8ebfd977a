"""TinyBERT-style knowledge distillation (Jiao et al., Findings of EMNLP 2020) of a fine-tuned teacher into a LiteBERT
student, on the stock Trainer (`DistillationTrainer` overrides `compute_loss` only, plus the saving and loading of the
learned projections).

Losses (TinyBERT §3.1), each with its weight in `DistillationWeights`:
- embeddings: MSE(E_s W_e, E_t) between the embedding outputs (LiteBERT's after the E -> H projection);
- hidden states: MSE(H_s^m W_h, H_t^g(m)) for every student layer application m and its teacher layer g(m): a block
  shared by several layers is distilled once per application;
- attention: MSE between the attention maps of m and g(m) over real tokens. TinyBERT fits the scores before the
  softmax; transformers' attention interface hands out the probabilities, which are fitted here. With as many heads
  on both sides the maps are compared head by head; otherwise each side's maps are averaged over its heads first;
- prediction: the cross-entropy of the student's softened distribution against the teacher's (temperature T), or the
  MSE of the two outputs for a regression task; for extractive question answering, the mean of that cross-entropy
  over the start and over the end positions, each a distribution over the real tokens; plus, optionally, the usual
  loss on the true labels.
W_e and W_h are learned (identity-sized when the widths match, still learned, as in TinyBERT). g is TinyBERT's
uniform map g(m) = round(m * N / M) for M student and N teacher layers unless a map is given.
"""

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel, Trainer
from transformers.modeling_outputs import ModelOutput, QuestionAnsweringModelOutput

PROJECTIONS_FILE = "distillation_projections.safetensors"
STAGES = ("all", "intermediate", "prediction")


@dataclass(frozen=True)
class DistillationWeights:
    embeddings: float = 1.0
    hidden: float = 1.0
    attention: float = 1.0
    prediction: float = 1.0
    hard_labels: float = 0.0
    temperature: float = 1.0

    def __post_init__(self):
        for name in ("embeddings", "hidden", "attention", "prediction", "hard_labels"):
            if getattr(self, name) < 0:
                raise ValueError(f"the {name} loss weight is {getattr(self, name)}; weights must be >= 0.")
        if self.temperature <= 0:
            raise ValueError(f"temperature={self.temperature} must be > 0.")


def uniform_layer_map(student_layers: int, teacher_layers: int) -> list[int]:
    """TinyBERT's uniform mapping: student layer m (1-based) learns from teacher layer round(m * N / M)."""
    return [max(1, round(m * teacher_layers / student_layers)) for m in range(1, student_layers + 1)]


def parse_layer_map(text: str | None, student_layers: int, teacher_layers: int) -> list[int]:
    """'3,6,9,12' -> the teacher layer of each student layer (1-based); None: the uniform map."""
    if not text:
        return uniform_layer_map(student_layers, teacher_layers)
    try:
        layers = [int(item) for item in text.split(",")]
    except ValueError:
        raise ValueError(f"layer map {text!r} must be comma-separated teacher layer numbers") from None
    if len(layers) != student_layers or not all(1 <= layer <= teacher_layers for layer in layers):
        raise ValueError(f"layer map {text!r} must name {student_layers} teacher layers (one per student layer "
                         f"application), each in 1..{teacher_layers}")
    return layers


class DistillationLoss(nn.Module):
    """The TinyBERT losses between a student's and a teacher's outputs; holds the learned projections W_e, W_h."""

    def __init__(self, student_hidden: int, teacher_hidden: int, layer_map: list[int], weights: DistillationWeights,
                 stage: str = "all"):
        super().__init__()
        if stage not in STAGES:
            raise ValueError(f"stage={stage!r} is unknown; allowed: {', '.join(STAGES)}")
        self.layer_map, self.weights, self.stage = layer_map, weights, stage
        self.embedding_projection = nn.Linear(student_hidden, teacher_hidden, bias=False)
        self.hidden_projection = nn.Linear(student_hidden, teacher_hidden, bias=False)

    @property
    def needs_hidden_states(self) -> bool:
        return self.stage != "prediction" and (self.weights.embeddings > 0 or self.weights.hidden > 0)

    @property
    def needs_attentions(self) -> bool:
        return self.stage != "prediction" and self.weights.attention > 0

    def forward(self, student: ModelOutput, teacher: ModelOutput, real: torch.Tensor) -> dict:
        """The weighted losses by name and their sum ("loss") between two classifiers' or two question-answering
        models' outputs; `real` `[B, L]` marks the tokens that are not padding. The hard-label loss is the student's
        own loss, there when the batch had labels."""
        losses = {}
        if self.stage != "prediction":
            if self.weights.embeddings > 0:
                losses["embedding_loss"] = self.weights.embeddings * _masked_mse(
                    self.embedding_projection(student.hidden_states[0]), teacher.hidden_states[0], real)
            if self.weights.hidden > 0:
                losses["hidden_loss"] = self.weights.hidden * torch.stack([
                    _masked_mse(self.hidden_projection(student.hidden_states[m]), teacher.hidden_states[g], real)
                    for m, g in enumerate(self.layer_map, start=1)]).sum()
            if self.weights.attention > 0:
                losses["attention_loss"] = self.weights.attention * torch.stack([
                    attention_mse(student.attentions[m - 1], teacher.attentions[g - 1], real)
                    for m, g in enumerate(self.layer_map, start=1)]).sum()
        if self.stage != "intermediate":
            if self.weights.prediction > 0:
                losses["prediction_loss"] = self.weights.prediction * soft_label_loss(
                    student, teacher, real, self.weights.temperature)
            if self.weights.hard_labels > 0 and student.loss is not None:
                losses["hard_label_loss"] = self.weights.hard_labels * student.loss
        if not losses:
            raise ValueError(f"stage {self.stage!r} with these weights leaves no loss to train on.")
        losses["loss"] = torch.stack(list(losses.values())).sum()
        return losses


def _masked_mse(student: torch.Tensor, teacher: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """MSE over the real tokens' vectors `[B, L, H]`."""
    return F.mse_loss(student[real].float(), teacher[real].float())


def attention_mse(student: torch.Tensor, teacher: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """MSE between attention maps `[B, heads, L, L]` over real query and key positions, head by head with as many
    heads on both sides, else between the maps averaged over heads."""
    if student.shape[1] != teacher.shape[1]:
        student, teacher = student.mean(1, keepdim=True), teacher.mean(1, keepdim=True)
    pairs = (real[:, :, None] & real[:, None, :])[:, None].expand_as(student)
    return F.mse_loss(student[pairs].float(), teacher[pairs].float())


def prediction_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
                    candidates: torch.Tensor | None = None) -> torch.Tensor:
    """Soft cross-entropy -sum p_t log p_s at temperature T (mean over the batch); MSE for one output (regression).
    `candidates` `[B, C]`, when given, marks the classes that count: both distributions are over those alone."""
    if candidates is None and student_logits.shape[-1] == 1:
        return F.mse_loss(student_logits.float(), teacher_logits.float())
    student_scaled, teacher_scaled = student_logits.float() / temperature, teacher_logits.float() / temperature
    if candidates is not None:  # the lowest float rather than -inf: no inf - inf in the softmax
        lowest = torch.finfo(torch.float32).min
        student_scaled = student_scaled.masked_fill(~candidates, lowest)
        teacher_scaled = teacher_scaled.masked_fill(~candidates, lowest)
    terms = F.softmax(teacher_scaled, dim=-1) * F.log_softmax(student_scaled, dim=-1)
    if candidates is not None:
        terms = terms.masked_fill(~candidates, 0.0)
    return -terms.sum(-1).mean()


def soft_label_loss(student: ModelOutput, teacher: ModelOutput, real: torch.Tensor, temperature: float) -> torch.Tensor:
    """The prediction-layer loss: a classifier's over its logits; a question-answering model's is the mean of the
    start-position and end-position losses, each over the real tokens (as its hard loss averages the two)."""
    if isinstance(student, QuestionAnsweringModelOutput):
        return (prediction_loss(student.start_logits, teacher.start_logits, temperature, real)
                + prediction_loss(student.end_logits, teacher.end_logits, temperature, real)) / 2
    return prediction_loss(student.logits, teacher.logits, temperature)


class DistillationTrainer(Trainer):
    """The stock Trainer with the TinyBERT loss: `compute_loss` runs the frozen teacher beside the student. The
    projections W_e, W_h train with the student (an extra optimizer group) and are saved in every checkpoint as
    `distillation_projections.safetensors`, so a resumed run continues with them."""

    def __init__(self, *args, teacher: PreTrainedModel, distillation: DistillationLoss, **kwargs):
        super().__init__(*args, **kwargs)
        self.teacher = teacher.eval().to(self.args.device)
        self.teacher.requires_grad_(False)
        self.distillation = distillation.to(self.args.device)
        self.part_sums: dict[str, float] = {}  # the loss parts since the last log, for the training logs
        self.part_count = 0

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        optimizer = super().create_optimizer(model)
        projections = [parameter for parameter in self.distillation.parameters() if parameter.requires_grad]
        if projections and not any(group.get("distillation") for group in optimizer.param_groups):
            optimizer.add_param_group({"params": projections, "weight_decay": 0.0, "distillation": True})
        return optimizer

    def compute_loss(self, model: nn.Module, inputs: dict, return_outputs: bool = False,
                     num_items_in_batch: torch.Tensor | None = None
                     ) -> torch.Tensor | tuple[torch.Tensor, ModelOutput]:
        flags = {"output_hidden_states": self.distillation.needs_hidden_states,
                 "output_attentions": self.distillation.needs_attentions}
        student = model(**inputs, **flags)
        with torch.no_grad():
            teacher = self.teacher(**{name: value for name, value in inputs.items() if name not in self.label_names},
                                   **flags)
        mask = inputs.get("attention_mask")
        real = mask.bool() if mask is not None else torch.ones_like(inputs["input_ids"], dtype=torch.bool)
        losses = self.distillation(student, teacher, real)
        if model.training:
            for name, value in losses.items():
                if name != "loss":
                    self.part_sums[name] = self.part_sums.get(name, 0.0) + value.item()
            self.part_count += 1
        # the logits alone: evaluation gathers every output it is given, and the maps are not wanted there
        logits = {name: value for name, value in student.items() if name.endswith("logits")}
        outputs = type(student)(loss=losses["loss"], **logits)
        return (losses["loss"], outputs) if return_outputs else losses["loss"]

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self.part_count:
            logs.update({name: float(f"{total / self.part_count:.4g}") for name, total in self.part_sums.items()})
            self.part_sums, self.part_count = {}, 0
        super().log(logs, start_time)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        super()._save(output_dir, state_dict)
        if self.args.should_save:
            folder = Path(output_dir or self.args.output_dir)
            save_file({name: tensor.detach().cpu().contiguous() for name, tensor in
                       self.distillation.state_dict().items()}, folder / PROJECTIONS_FILE)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        path = Path(resume_from_checkpoint) / PROJECTIONS_FILE
        if path.is_file():
            self.distillation.load_state_dict(load_file(path, device=str(self.args.device)))
