"""LiteBERT trains with the stock transformers Trainer."""

import pytest
import torch
from datasets import Dataset
from transformers import Trainer, TrainingArguments

from litebert import LiteBertConfig, LiteBertForMaskedLM, LiteBertForSequenceClassification
from litebert.trainer_callbacks import TrainingDivergedError, add_litebert_callbacks

from conftest import tiny_config_kwargs


def classification_data(n=64, length=12):
    """The label is told by the first token (7 or 8), where the pooler reads: learnable in a few steps."""
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(9, 99, (n, length), generator=generator)
    labels = torch.arange(n) % 2
    input_ids[:, 0] = 8 - labels
    return Dataset.from_dict({"input_ids": input_ids.tolist(), "labels": labels.tolist()})


def masked_lm_data(n=64, length=12):
    """Sequences of a repeated 3-token motif; every 4th token is masked and must be predicted."""
    generator = torch.Generator().manual_seed(0)
    motifs = torch.randint(10, 99, (n, 3), generator=generator)
    original = motifs.repeat(1, length // 3)
    input_ids = original.clone()
    input_ids[:, 1::4] = 4  # mask id
    labels = torch.full_like(original, -100)
    labels[:, 1::4] = original[:, 1::4]
    return Dataset.from_dict({"input_ids": input_ids.tolist(), "labels": labels.tolist()})


def eval_loss(model, dataset):
    model.eval()
    batch = {name: torch.tensor(dataset[name]) for name in dataset.column_names}
    with torch.no_grad():
        return model(**batch).loss.item()


def train_ten_steps(model, dataset, tmp_path):
    arguments = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=10,
        per_device_train_batch_size=16,
        learning_rate=1e-2,
        lr_scheduler_type="constant",
        warmup_steps=0,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=0,
    )
    trainer = Trainer(model=model, args=arguments, train_dataset=dataset)
    trainer.train()
    return trainer


def test_trainer_lowers_the_masked_lm_loss(tmp_path):
    torch.manual_seed(0)
    model = LiteBertForMaskedLM(LiteBertConfig(**tiny_config_kwargs()))
    data = masked_lm_data()
    before = eval_loss(model, data)
    trainer = train_ten_steps(model, data, tmp_path)
    after = eval_loss(model, data)
    assert trainer.state.global_step == 10
    assert after < before - 0.2, (before, after)  # 4.59 -> 4.24 when measured


def test_trainer_lowers_the_classification_loss(tmp_path):
    torch.manual_seed(0)
    model = LiteBertForSequenceClassification(LiteBertConfig(**tiny_config_kwargs(num_labels=2)))
    data = classification_data()
    before = eval_loss(model, data)
    train_ten_steps(model, data, tmp_path)
    after = eval_loss(model, data)
    assert after < 0.5 * before, (before, after)  # 0.69 -> 0.01 when measured


def test_non_finite_gradients_stop_training_before_the_weights_change(tmp_path):
    """A finite loss whose gradients overflow (here forced by a gradient hook from step 3 on) stops training with the
    step named; the weights stay those after step 2."""
    torch.manual_seed(0)
    model = LiteBertForSequenceClassification(LiteBertConfig(**tiny_config_kwargs(num_labels=2)))
    trainer = Trainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), max_steps=10, save_strategy="no",
                                                          report_to=[], use_cpu=True, learning_rate=1e-3),
                      train_dataset=classification_data())
    add_litebert_callbacks(trainer)
    weights_after = {}

    def overflow_from_step_3(gradient):
        if trainer.state.global_step == 2:
            weights_after.setdefault(2, {name: p.detach().clone() for name, p in model.named_parameters()})
            return gradient * float("inf")
        return gradient

    model.classifier.weight.register_hook(overflow_from_step_3)
    with pytest.raises(TrainingDivergedError, match="training diverged at step 3: the gradients are not finite"):
        trainer.train()
    assert all(torch.equal(parameter, weights_after[2][name]) for name, parameter in model.named_parameters())


def test_train_seconds_leave_out_evaluations_and_carry_over_a_resume(tmp_path):
    """Each evaluation here takes at least 0.3 s (a slow metric); `train_seconds` counts training only, so at the
    last log it is below the session's wall-clock minus the evaluations, and a resumed run continues from it."""
    import time

    def slow_metric(prediction):
        time.sleep(0.3)
        return {"zero": 0.0}

    def run(max_steps):
        torch.manual_seed(0)
        model = LiteBertForSequenceClassification(LiteBertConfig(**tiny_config_kwargs(num_labels=2)))
        arguments = TrainingArguments(output_dir=str(tmp_path), max_steps=max_steps, per_device_train_batch_size=16,
                                      logging_steps=2, eval_strategy="steps", eval_steps=2, save_steps=4,
                                      report_to=[], use_cpu=True, seed=0)
        trainer = Trainer(model=model, args=arguments, train_dataset=classification_data(),
                          eval_dataset=classification_data(n=16), compute_metrics=slow_metric)
        add_litebert_callbacks(trainer, plot_losses=False)
        start = time.perf_counter()
        trainer.train(resume_from_checkpoint=str(tmp_path / "checkpoint-4") if max_steps > 4 else None)
        return trainer.state.log_history, time.perf_counter() - start

    history, wall_clock = run(4)
    seconds = [entry["train_seconds"] for entry in history if "train_seconds" in entry]
    evaluations = sum(entry["eval_runtime"] for entry in history if "eval_runtime" in entry)
    assert len(seconds) == 2 and 0 < seconds[0] < seconds[1] and evaluations >= 0.6
    assert seconds[1] < wall_clock - evaluations + 0.05
    resumed, _ = run(8)
    later = [entry["train_seconds"] for entry in resumed if "train_seconds" in entry]
    assert later[:2] == seconds and later[2] > seconds[1] and len(later) == 4
