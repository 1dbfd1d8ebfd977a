"""What `litebert-pretrain --objective` changes: the pretraining head, and the held-out metrics computed from its
outputs.

The Trainer hands each evaluation batch's outputs (a tuple, in the order of the output class's fields, without the
loss and the fields that are None) to `reduce`, which keeps only small per-position or per-row arrays (the vocabulary
logits of a whole evaluation set would not fit in memory); `metrics` turns their concatenation into numbers. Arrays
of shape `[batch, length]` use -100 where nothing is measured (the Trainer pads them with -100 across batches).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F
from transformers import EvalPrediction, PreTrainedModel

from .. import LiteBertForPreTraining
from ..modeling_objectives import LiteBertForMultipleChoiceCloze, LiteBertForReplacedTokenDetection


@dataclass(frozen=True)
class Objective:
    model_class: type[PreTrainedModel]
    reduce: Callable[[tuple, tuple | torch.Tensor], tuple]
    metrics: Callable[[EvalPrediction], dict]
    # held-out metrics drawn in loss_curves.png besides the total loss: component losses, then accuracies
    plotted_losses: tuple[str, ...]
    plotted_accuracies: tuple[str, ...]


def _labels(labels: tuple | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(MLM labels, SOP labels or None): the Trainer passes a lone tensor when the batch has no SOP labels."""
    if isinstance(labels, torch.Tensor):
        return labels, None
    return labels[0], labels[1] if len(labels) > 1 else None


def _mlm_reduction(scores: torch.Tensor, mlm_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The argmax at labelled positions (-100 elsewhere) and each row's summed cross-entropy. `scores` are
    `[batch, length, vocab]`, or with sparse prediction one row per labelled position in row-major order."""
    labelled = mlm_labels != -100
    scored = scores if scores.dim() == 2 else scores[labelled]
    token_losses = F.cross_entropy(scored.float(), mlm_labels[labelled], reduction="none")
    row_losses = torch.zeros(mlm_labels.shape[0], device=token_losses.device)
    row_losses.index_add_(0, labelled.nonzero()[:, 0], token_losses)
    predictions = torch.full_like(mlm_labels, -100)
    predictions[labelled] = scored.argmax(-1)
    return predictions, row_losses


def _mlm_metrics(predictions: np.ndarray, labels: np.ndarray, row_losses: np.ndarray, prefix: str) -> dict:
    masked = labels != -100
    loss = float(np.sum(row_losses) / max(int(masked.sum()), 1))
    return {
        f"{prefix}mlm_accuracy": float((predictions[masked] == labels[masked]).mean()),
        f"{prefix}mlm_loss": loss,
        f"{prefix}perplexity": math.exp(min(loss, 50.0)),
    }


def _with_sop(reduced: tuple, sop_logits: torch.Tensor, sop_labels: torch.Tensor | None) -> tuple:
    return reduced if sop_labels is None else (*reduced, sop_logits.argmax(-1))


def _sop_metrics(predictions: tuple, label_ids: tuple, count: int) -> dict:
    """SOP accuracy when the evaluation had SOP labels (the reduction then appended the SOP argmax)."""
    if len(predictions) == count:
        return {}
    return {"sop_accuracy": float((predictions[-1] == label_ids[1]).mean())}


def _label_arrays(label_ids: tuple | np.ndarray) -> tuple:
    return (label_ids,) if isinstance(label_ids, np.ndarray) else tuple(label_ids)


def reduce_mlm(logits: tuple, labels: tuple | torch.Tensor) -> tuple:
    """MLM + SOP: the MLM argmax at labelled positions, each row's summed MLM cross-entropy (and the SOP argmax)."""
    mlm_labels, sop_labels = _labels(labels)
    return _with_sop(_mlm_reduction(logits[0], mlm_labels), logits[1], sop_labels)


def mlm_metrics(eval_prediction: EvalPrediction) -> dict:
    """MLM accuracy, loss and perplexity over the masked tokens (and SOP accuracy over the pairs)."""
    label_ids = _label_arrays(eval_prediction.label_ids)
    predictions, row_losses = eval_prediction.predictions[:2]
    metrics = _mlm_metrics(predictions, label_ids[0], row_losses, prefix="")
    return {**metrics, **_sop_metrics(eval_prediction.predictions, label_ids, 2)}


def reduce_electra(logits: tuple, labels: tuple | torch.Tensor) -> tuple:
    """ELECTRA: the generator's MLM argmax and row losses; the discriminator's decisions (1: replaced), the
    replaced-token labels (-100 where no question was asked) and each row's summed detection loss (and SOP argmax)."""
    scores, replaced_labels, generator_logits, sop_logits = logits[:4]
    mlm_labels, sop_labels = _labels(labels)
    asked = replaced_labels != -100
    decisions = torch.where(asked, (scores > 0).long(), -100)
    token_losses = F.binary_cross_entropy_with_logits(scores.float(), replaced_labels.clamp(min=0).float(),
                                                      reduction="none")
    row_losses = (token_losses * asked).sum(1)
    reduced = (*_mlm_reduction(generator_logits, mlm_labels), decisions, replaced_labels, row_losses)
    return _with_sop(reduced, sop_logits, sop_labels)


def electra_metrics(eval_prediction: EvalPrediction) -> dict:
    """Generator MLM accuracy/loss; replaced-token detection accuracy, precision, recall and F1 (replaced is the
    positive class), its loss, and the share of asked positions that the generator's samples changed."""
    label_ids = _label_arrays(eval_prediction.label_ids)
    generator_predictions, generator_losses, decisions, replaced, row_losses = eval_prediction.predictions[:5]
    asked = replaced != -100
    decisions, replaced = decisions[asked], replaced[asked]
    true_positives = int(((decisions == 1) & (replaced == 1)).sum())
    precision = true_positives / max(int((decisions == 1).sum()), 1)
    recall = true_positives / max(int((replaced == 1).sum()), 1)
    return {
        **_mlm_metrics(generator_predictions, label_ids[0], generator_losses, prefix="generator_"),
        "rtd_accuracy": float((decisions == replaced).mean()),
        "rtd_precision": precision,
        "rtd_recall": recall,
        "rtd_f1": 2 * precision * recall / max(precision + recall, 1e-12),
        "rtd_loss": float(np.sum(row_losses) / max(int(asked.sum()), 1)),
        "replaced_fraction": float(replaced.mean()),
        **_sop_metrics(eval_prediction.predictions, label_ids, 5),
    }


def reduce_mc(logits: tuple, labels: tuple | torch.Tensor) -> tuple:
    """MC-BERT: the controller's MLM argmax and row losses; the main model's choices (0: reject, 1: the original,
    2..K: a distractor), the right choices (-100 where no question was asked) and each row's summed cloze loss (and
    SOP argmax)."""
    scores, cloze_labels, _candidates, generator_logits, sop_logits = logits[:5]
    mlm_labels, sop_labels = _labels(labels)
    asked = cloze_labels != -100
    choices = torch.where(asked, scores.argmax(-1), -100)
    token_losses = F.cross_entropy(scores.float().transpose(1, 2), cloze_labels.clamp(min=0), reduction="none")
    row_losses = (token_losses * asked).sum(1)
    reduced = (*_mlm_reduction(generator_logits, mlm_labels), choices, cloze_labels, row_losses)
    return _with_sop(reduced, sop_logits, sop_labels)


def mc_metrics(eval_prediction: EvalPrediction) -> dict:
    """Controller MLM accuracy/loss; cloze accuracy over all questions, over those at replaced positions (the
    original picked) and at unchanged ones (reject picked), and the cloze loss."""
    label_ids = _label_arrays(eval_prediction.label_ids)
    generator_predictions, generator_losses, choices, right, row_losses = eval_prediction.predictions[:5]
    asked = right != -100
    choices, right = choices[asked], right[asked]
    replaced = right == 1
    return {
        **_mlm_metrics(generator_predictions, label_ids[0], generator_losses, prefix="generator_"),
        "mc_accuracy": float((choices == right).mean()),
        "mc_replaced_accuracy": float((choices[replaced] == 1).mean()) if replaced.any() else 0.0,
        "mc_reject_accuracy": float((choices[~replaced] == 0).mean()) if (~replaced).any() else 0.0,
        "mc_loss": float(np.sum(row_losses) / max(int(asked.sum()), 1)),
        "replaced_fraction": float(replaced.mean()),
        **_sop_metrics(eval_prediction.predictions, label_ids, 5),
    }


OBJECTIVES = {
    "mlm": Objective(LiteBertForPreTraining, reduce_mlm, mlm_metrics, ("eval_mlm_loss",), ("eval_mlm_accuracy",)),
    "electra": Objective(LiteBertForReplacedTokenDetection, reduce_electra, electra_metrics,
                         ("eval_generator_mlm_loss", "eval_rtd_loss"), ("eval_generator_mlm_accuracy",
                                                                        "eval_rtd_accuracy", "eval_rtd_f1")),
    "mc": Objective(LiteBertForMultipleChoiceCloze, reduce_mc, mc_metrics,
                    ("eval_generator_mlm_loss", "eval_mc_loss"), ("eval_generator_mlm_accuracy", "eval_mc_accuracy",
                                                                  "eval_mc_replaced_accuracy")),
}
