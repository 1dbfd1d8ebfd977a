"""Callbacks for the stock `transformers.Trainer`: throughput and parameter counts in the logs, loss-curve plot, a
LiteBERT model card kept up to date in the output folder (also the one `Trainer.push_to_hub` uploads), and a stop at
the first non-finite loss or gradient.

    >>> trainer = Trainer(model=model, args=args, train_dataset=train_dataset)
    >>> add_litebert_callbacks(trainer)
    >>> trainer.train()     # logs gain tokens_per_second, examples_per_second and param/* entries
    >>> trainer.push_to_hub()   # uploads output_dir with the LiteBERT card as README.md
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

import torch
from torch.utils.hooks import RemovableHandle
from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from .hub_cards import write_model_card
from .parameters import parameter_counts


class ThroughputCallback(TrainerCallback):
    """Adds `examples_per_second` and `tokens_per_second` (non-padding tokens, all processes) to each training log,
    measured over the steps since the previous log (transformers' own `train_tokens_per_second` averages since the
    start, hiding slow-downs), and `train_seconds`, the time spent training since step 0 (carried over a resume).
    Evaluations in between are not counted as training time. Token counts need `TrainingArguments(
    include_num_input_tokens_seen="non_padding")` (or "all"); without it only the example rate is logged."""

    def __init__(self) -> None:
        self.last_time: float | None = None
        self.last_step = 0
        self.last_tokens = 0
        self.evaluation_seconds = 0.0  # spent evaluating since the previous log
        self.train_seconds = 0.0

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: object) -> None:
        self.last_time = time.perf_counter()
        self.last_step = state.global_step
        self.last_tokens = state.num_input_tokens_seen
        self.evaluation_seconds = 0.0
        logged = [entry["train_seconds"] for entry in state.log_history if "train_seconds" in entry]
        self.train_seconds = logged[-1] if logged else 0.0

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    metrics: dict[str, float] | None = None, **kwargs: object) -> None:
        self.evaluation_seconds += sum(value for name, value in (metrics or {}).items() if name.endswith("_runtime"))

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, float] | None = None, **kwargs: object) -> None:
        if logs is None or "loss" not in logs or self.last_time is None:
            return
        now = time.perf_counter()
        elapsed = now - self.last_time - self.evaluation_seconds
        if elapsed <= 0 or state.global_step == self.last_step:
            return
        self.train_seconds += elapsed
        examples_per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
        rates = {"examples_per_second": round((state.global_step - self.last_step) * examples_per_step / elapsed, 2),
                 "train_seconds": round(self.train_seconds, 3)}
        if state.num_input_tokens_seen:
            rates["tokens_per_second"] = round((state.num_input_tokens_seen - self.last_tokens) / elapsed, 1)
        _add_to_log(state, logs, rates)
        self.last_time, self.last_step, self.last_tokens = now, state.global_step, state.num_input_tokens_seen
        self.evaluation_seconds = 0.0


class ParameterCountCallback(TrainerCallback):
    """Adds the model's parameter counts (`param/total`, `param/effective`, ...; see `parameter_counts`) to the first
    training log, so they reach every logger the Trainer reports to."""

    def __init__(self) -> None:
        self.counts: dict[str, int] | None = None

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       model: torch.nn.Module | None = None, **kwargs: object) -> None:
        if model is not None and hasattr(model, "base_model") and hasattr(model.base_model, "encoder"):
            self.counts = {f"param/{name}": value for name, value in parameter_counts(model).items()}

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, float] | None = None, **kwargs: object) -> None:
        if self.counts and logs is not None:
            _add_to_log(state, logs, self.counts)
            self.counts = None


def _add_to_log(state: TrainerState, logs: dict[str, float], entries: Mapping[str, float]) -> None:
    """Add entries to the log dict the later callbacks (reporters, progress bar) receive, and to the copy the Trainer
    already stored in `state.log_history` (saved in trainer_state.json)."""
    logs.update(entries)
    if state.log_history and state.log_history[-1].get("step") == state.global_step:
        state.log_history[-1].update(entries)


class TrainingDivergedError(ArithmeticError):
    """The training loss or its gradients stopped being finite numbers."""


class DivergenceCallback(TrainerCallback):
    """Stops training with TrainingDivergedError, naming the step, at the first optimizer step whose loss or gradients
    are not finite, before the optimizer applies them: the weights and every checkpoint saved so far stay finite.
    (The Trainer alone would log such a loss as the mean of earlier ones and train on into NaN weights.) The loss is
    read from each training forward pass; the gradients are checked too, since a finite loss can have overflowing
    gradients, except under fp16, whose gradient scaler skips overflowing steps by design."""

    def __init__(self) -> None:
        self.hook: RemovableHandle | None = None
        self.state: TrainerState | None = None

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       model: torch.nn.Module | None = None, **kwargs: object) -> None:
        self.state = state
        if model is not None:
            self.hook = model.register_forward_hook(self.check_loss)

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                     **kwargs: object) -> None:
        self.remove_hook()

    def remove_hook(self) -> None:
        if self.hook is not None:
            self.hook.remove()
            self.hook = None

    def check_loss(self, module: torch.nn.Module, inputs: tuple[object, ...], outputs: object) -> None:
        loss = getattr(outputs, "loss", None)
        if module.training and loss is not None and not torch.isfinite(loss).all():
            self.stop(f"the loss is {loss.detach().float().mean().item()}")

    def on_pre_optimizer_step(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                              model: torch.nn.Module | None = None, **kwargs: object) -> None:
        gradients = [parameter.grad for parameter in model.parameters() if parameter.grad is not None]
        if not args.fp16 and gradients and not torch.isfinite(torch.nn.utils.get_total_norm(gradients)):
            self.stop("the gradients are not finite")

    def stop(self, problem: str) -> NoReturn:
        self.remove_hook()
        raise TrainingDivergedError(
            f"training diverged at step {self.state.global_step + 1}: {problem}. It stopped before that step changed "
            "the weights, so the checkpoints saved so far hold finite ones; try a lower --learning_rate or a longer "
            "warm-up."
        )


class LossPlotCallback(TrainerCallback):
    """Writes `loss_curves.png` (training and evaluation loss against step) to the output folder when training ends."""

    def __init__(self, file_name: str = "loss_curves.png") -> None:
        self.file_name = file_name

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                     **kwargs: object) -> None:
        if state.is_world_process_zero:
            plot_loss_curves(state.log_history, Path(args.output_dir) / self.file_name)


def plot_loss_curves(
    log_history: list[dict[str, float]], path: Path, losses: Sequence[str] = (), accuracies: Sequence[str] = ()
) -> Path | None:
    """Plot the `loss` and `eval_loss` entries of a Trainer log history against step, with the held-out metrics
    named in `losses` (e.g. a pretraining objective's component losses) beside them and those in `accuracies` in a
    second panel; returns the path, or None with nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def curve(name: str) -> list[tuple[float, float]]:
        return [(entry["step"], entry[name]) for entry in log_history if name in entry]

    loss_curves = {"training loss": curve("loss"), "evaluation loss": curve("eval_loss")}
    loss_curves.update({_metric_label(name): curve(name) for name in losses})
    accuracy_curves = {_metric_label(name): curve(name) for name in accuracies}
    if not any(loss_curves.values()):
        return None
    panels = [(loss_curves, "loss")] + ([(accuracy_curves, "accuracy")] if any(accuracy_curves.values()) else [])
    figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for axis, (curves, y_label) in zip(axes[0], panels):
        for label, points in curves.items():
            if points:
                steps, values = zip(*points)
                axis.plot(steps, values, marker="o" if len(points) < 30 else None, label=label)
        axis.set_xlabel("step")
        axis.set_ylabel(y_label)
        axis.legend()
        axis.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _metric_label(name: str) -> str:
    """'eval_generator_mlm_loss' -> 'held-out generator mlm loss'."""
    return "held-out " + name.removeprefix("eval_").replace("_", " ")


class ModelCardCallback(TrainerCallback):
    """Keeps `output_dir/README.md` a LiteBERT model card (see `litebert.hub_cards`): refreshed after every evaluation,
    before every push to the Hub and at the end of training, with the latest evaluation's metrics merged over the
    results files."""

    def __init__(self) -> None:
        self.latest_metrics: dict[str, float] = {}

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    model: torch.nn.Module | None = None, metrics: dict[str, float] | None = None,
                    **kwargs: object) -> None:
        self.latest_metrics.update(metrics or {})
        self.refresh(args, state.is_world_process_zero, model)

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                     model: torch.nn.Module | None = None, **kwargs: object) -> None:
        self.refresh(args, state.is_world_process_zero, model)

    def on_push_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                      model: torch.nn.Module | None = None, **kwargs: object) -> None:
        self.refresh(args, state.is_world_process_zero, model)

    def refresh(self, args: TrainingArguments, is_main_process: bool, model: torch.nn.Module | None,
                **card_options: str | list[str] | None) -> None:
        if is_main_process and args.should_save and model is not None:
            card_options.setdefault("repo_id", args.hub_model_id)
            write_model_card(args.output_dir, model=model, extra_results=self.latest_metrics, **card_options)


def replace_pickled_training_args(training_args: TrainingArguments) -> None:
    """The Trainer pickles its arguments into the model folder; a folder meant for the Hub keeps JSON instead."""
    if training_args.should_save:
        Path(training_args.output_dir, "training_args.bin").unlink(missing_ok=True)
        Path(training_args.output_dir, "training_args.json").write_text(training_args.to_json_string())


def use_litebert_model_card(trainer: Trainer, card_callback: ModelCardCallback) -> None:
    """`Trainer.push_to_hub` saves the model, writes the generic Trainer summary over README.md and uploads
    output_dir. Make that card step write the LiteBERT card (and JSON training arguments instead of the pickled file),
    keeping the options `push_to_hub(**kwargs)` passes on: model_name, language, license, tags, finetuned_from."""

    def create_model_card(model_name: str | None = None, language: str | list[str] = "en", license: str = "apache-2.0",
                          tags: str | list[str] | None = None, finetuned_from: str | None = None,
                          **ignored: object) -> None:
        if not trainer.is_world_process_zero():
            return
        replace_pickled_training_args(trainer.args)
        options: dict[str, str | list[str] | None] = {
            "language": language, "license": license, "base_model": finetuned_from,
            "extra_tags": [tags] if isinstance(tags, str) else tags, "repo_id": trainer.hub_model_id,
        }
        if model_name:
            options["model_name"] = model_name
        card_callback.refresh(trainer.args, True, trainer.model, **options)

    trainer.create_model_card = create_model_card


def add_litebert_callbacks(trainer: Trainer, plot_losses: bool = True) -> Trainer:
    """Attach LiteBERT's callbacks (logging, divergence check, loss plot) and its model card. The logging callbacks go
    first in the callback list: they add entries to the log dict that the reporting and progress callbacks (which come
    earlier by default) must already see."""
    for callback in (ParameterCountCallback(), ThroughputCallback()):
        trainer.callback_handler.callbacks.insert(0, callback)
    trainer.add_callback(DivergenceCallback())
    if plot_losses:
        trainer.add_callback(LossPlotCallback())
    card_callback = ModelCardCallback()
    trainer.add_callback(card_callback)
    use_litebert_model_card(trainer, card_callback)
    return trainer
