"""`litebert-distill`: TinyBERT-style distillation of a fine-tuned GLUE or SQuAD teacher into a LiteBERT student.

    litebert-distill --teacher_name_or_path runs/minilm-sst2 --task_name sst2 --data_dir glue_data/SST-2 \\
        --student_preset albert-base --student_config_overrides "hidden_size=384,num_attention_heads=6,..." \\
        --output_dir runs/student-sst2 --do_train --do_eval --num_train_epochs 3 --learning_rate 1e-4
    litebert-distill --teacher_name_or_path runs/minilm-squad --task_name squad \\
        --train_file squad/train-v1.1.json --validation_file squad/dev-v1.1.json --output_dir runs/student-squad \\
        --do_train --do_eval

The teacher is any local LiteBERT, BERT or ALBERT folder with the task's head (a sequence classifier for GLUE, a
question-answering head for SQuAD; BERT and ALBERT are converted on loading); its tokenizer is the student's. The
student is a new LiteBERT of --student_preset and --student_config_overrides (any sharing mode: a block applied
several times is distilled once per application), or --student_name_or_path (a student from an earlier stage, or a
pretrained LiteBERT). --distill_stage intermediate trains the embedding, hidden-state and attention losses only,
prediction the soft-label loss only, all both at once (TinyBERT trains the first, then the second). The data flags
are litebert-glue's, or for --task_name squad litebert-squad's (--version_2_with_negative for SQuAD v2.0, windows by
--doc_stride, answers scored as litebert-squad scores them). The output folder is a normal LiteBERT classifier or
question-answering model; its card names the teacher. Losses: `litebert.distillation`.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset
from transformers import AutoConfig, EvalPrediction, PreTrainedModel, PreTrainedTokenizerBase, TrainingArguments

from .. import LiteBertConfig, LiteBertForQuestionAnswering, LiteBertForSequenceClassification
from ..distillation import STAGES, DistillationLoss, DistillationTrainer, DistillationWeights, parse_layer_map
from ..tasks.glue import GLUE_TASKS, GlueTask, get_glue_task, glue_metrics
from . import squad
from .common import (
    build_trainer,
    command,
    command_line,
    parse_config_overrides,
    parse_dataclass_arguments,
    save_metrics,
    seed_everything,
    setup_logging,
    train,
)
from .finetune import (
    FinetuningDataArguments,
    FinetuningModelArguments,
    describe_run,
    first_samples,
    load_model,
    load_tokenizer,
    resolve_max_seq_length,
)
from .glue import (
    DEFAULT_MAX_SEQ_LENGTH,
    check_requested_splits,
    label_config,
    limit_for_split,
    load_raw_splits,
    predict,
    tokenize,
)


@dataclass
class DistillationArguments:
    teacher_name_or_path: str = field(
        metadata={"help": "a fine-tuned LiteBERT, BERT or ALBERT classifier folder for the task"}
    )
    student_preset: str = field(default="albert-base", metadata={"help": "LiteBertConfig preset of a new student"})
    student_config_overrides: str | None = field(
        default=None, metadata={"help": "config fields over the preset, e.g. 'hidden_size=256,num_hidden_layers=4'"}
    )
    student_name_or_path: str | None = field(
        default=None, metadata={"help": "start from this LiteBERT folder instead of a new student"}
    )
    distill_stage: str = field(default="all", metadata={"help": f"one of {', '.join(STAGES)}"})
    layer_map: str | None = field(
        default=None, metadata={"help": "teacher layer (1-based) of each student layer, e.g. '3,6,9,12' (default: "
                                        "uniform)"}
    )
    temperature: float = field(default=1.0, metadata={"help": "softening of both distributions in the soft loss"})
    embedding_loss_weight: float = 1.0
    hidden_loss_weight: float = 1.0
    attention_loss_weight: float = 1.0
    prediction_loss_weight: float = 1.0
    hard_label_weight: float = field(default=0.0, metadata={"help": "weight of the loss on the true labels"})


SQUAD = "squad"


@dataclass
class DistillationTaskArguments:
    task_name: str = field(
        metadata={"help": f"one of {', '.join(GLUE_TASKS)}, or {SQUAD} (SQuAD v1.1; v2.0 with "
                          "--version_2_with_negative)"}
    )


def new_student(args: DistillationArguments, tokenizer: PreTrainedTokenizerBase, head_class: type[PreTrainedModel],
                labels: dict) -> PreTrainedModel:
    """The student: a new LiteBERT with `head_class`'s head over the teacher's vocabulary, or the one given."""
    if args.student_name_or_path:
        return load_model(head_class, FinetuningModelArguments(model_name_or_path=args.student_name_or_path,
                                                               ignore_mismatched_sizes=True), **labels)
    overrides = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
                 "bos_token_id": tokenizer.cls_token_id, "eos_token_id": tokenizer.sep_token_id}
    try:
        preset = LiteBertConfig.from_preset(args.student_preset, **overrides)
    except ValueError as error:
        raise SystemExit(f"--student_preset: {error}") from None
    overrides.update(parse_config_overrides(args.student_config_overrides, preset))
    return head_class(LiteBertConfig.from_preset(args.student_preset, **overrides, **labels))


def check_teacher_head(path: str, head_class: type[PreTrainedModel], task_name: str) -> None:
    """The teacher folder holds a model trained with the task's kind of head (its config's `architectures`): loading
    another one would start the head from scratch, and its soft labels would be noise."""
    kind = head_class.__name__.removeprefix("LiteBert")  # "ForSequenceClassification", "ForQuestionAnswering"
    architectures = AutoConfig.from_pretrained(path).architectures or []
    if not any(name.endswith(kind) for name in architectures):
        held = ", ".join(architectures) or "a model of no named architecture"
        raise SystemExit(f"--teacher_name_or_path {path} holds {held}; distilling {task_name} needs a teacher "
                         f"fine-tuned with a ...{kind} head.")


def check_label_count(teacher: PreTrainedModel, task: GlueTask, path: str) -> None:
    expected = 1 if task.is_regression else len(task.label_names)
    if teacher.config.num_labels != expected:
        raise SystemExit(f"--teacher_name_or_path {path} has a head of {teacher.config.num_labels} labels; "
                         f"{task.name} needs {expected}: distil from a teacher fine-tuned on the task.")


@dataclass
class Distillation:
    """What a distillation run trains with, whatever the task: the tokenizer, the frozen teacher, the student and the
    losses."""

    tokenizer: PreTrainedTokenizerBase
    teacher: PreTrainedModel
    student: PreTrainedModel
    loss: DistillationLoss


def prepare_distillation(args: DistillationArguments, training_args: TrainingArguments, task_name: str,
                         head_class: type[PreTrainedModel], labels: dict) -> Distillation:
    teacher_args = FinetuningModelArguments(model_name_or_path=args.teacher_name_or_path)
    tokenizer = load_tokenizer(teacher_args)
    check_teacher_head(args.teacher_name_or_path, head_class, task_name)
    teacher = load_model(head_class, teacher_args)
    seed_everything(training_args)  # the student's initial weights follow --seed
    student = new_student(args, tokenizer, head_class, labels)
    weights = DistillationWeights(
        embeddings=args.embedding_loss_weight, hidden=args.hidden_loss_weight, attention=args.attention_loss_weight,
        prediction=args.prediction_loss_weight, hard_labels=args.hard_label_weight, temperature=args.temperature)
    layer_map = parse_layer_map(args.layer_map, student.config.num_hidden_layers, teacher.config.num_hidden_layers)
    loss = DistillationLoss(student.config.hidden_size, teacher.config.hidden_size, layer_map, weights,
                            args.distill_stage)
    if loss.needs_attentions:  # only eager attention hands out its attention maps
        teacher.set_attn_implementation("eager")
        student.set_attn_implementation("eager")
    return Distillation(tokenizer, teacher, student, loss)


def describe_distillation(distillation: Distillation, task_name: str, args: DistillationArguments,
                          data_args: FinetuningDataArguments, training_args: TrainingArguments,
                          command: str | None) -> None:
    """The run's record and the card's facts: the teacher, the stage and the layer map."""
    student_source = args.student_name_or_path
    describe_run(distillation.student, task_name, command or command_line("litebert-distill", None),
                 FinetuningModelArguments(model_name_or_path=student_source or args.teacher_name_or_path),
                 data_args, training_args, teacher=args.teacher_name_or_path,
                 base_model=None if student_source is None or Path(student_source).exists() else student_source,
                 distillation=f"TinyBERT-style, stage {args.distill_stage}, layer map {distillation.loss.layer_map}")


def distillation_trainer(distillation: Distillation, training_args: TrainingArguments, train_dataset: Dataset | None,
                         eval_dataset: Dataset | None = None,
                         compute_metrics: Callable[[EvalPrediction], dict] | None = None) -> DistillationTrainer:
    return build_trainer(distillation.student, training_args, distillation.tokenizer, train_dataset, eval_dataset,
                         compute_metrics=compute_metrics, trainer_class=DistillationTrainer,
                         teacher=distillation.teacher, distillation=distillation.loss)


def run(
    distill_args: DistillationArguments,
    data_args: FinetuningDataArguments,
    task_args: DistillationTaskArguments,
    squad_args: squad.SquadArguments,
    training_args: TrainingArguments,
    command: str | None = None,
) -> dict:
    setup_logging(training_args)
    if distill_args.distill_stage not in STAGES:
        raise SystemExit(f"--distill_stage {distill_args.distill_stage!r} is unknown; allowed: {', '.join(STAGES)}.")
    if task_args.task_name.lower() == SQUAD:
        return run_squad(distill_args, data_args, squad_args, training_args, command)
    return run_glue(distill_args, data_args, task_args.task_name, training_args, command)


def run_glue(distill_args: DistillationArguments, data_args: FinetuningDataArguments, task_name: str,
             training_args: TrainingArguments, command: str | None) -> dict:
    try:
        task = get_glue_task(task_name)
    except ValueError as error:
        raise SystemExit(f"--task_name: {error}, or {SQUAD}") from None
    raw_splits = load_raw_splits(task, data_args)
    check_requested_splits(raw_splits, training_args)
    distillation = prepare_distillation(distill_args, training_args, task.name, LiteBertForSequenceClassification,
                                        label_config(task))
    check_label_count(distillation.teacher, task, distill_args.teacher_name_or_path)
    describe_distillation(distillation, task.name, distill_args, data_args, training_args, command)

    max_seq_length = resolve_max_seq_length(data_args, DEFAULT_MAX_SEQ_LENGTH, distillation.student.config)
    limited = {name: first_samples(dataset, limit_for_split(name, data_args)) for name, dataset in raw_splits.items()}
    with training_args.main_process_first(desc="tokenizing"):
        splits = tokenize(limited, task, distillation.tokenizer, max_seq_length, data_args.preprocessing_num_workers)
    eval_dataset = next((dataset for name, dataset in splits.items() if name.startswith("validation")), None)
    trainer = distillation_trainer(
        distillation, training_args, splits.get("train"), eval_dataset,
        compute_metrics=lambda prediction: glue_metrics(task, prediction.predictions, prediction.label_ids))
    results = {"layer_map": distillation.loss.layer_map}
    if training_args.do_train:
        results.update(train(trainer, data_args.auto_resume, train_samples=len(splits["train"])))
    if training_args.do_eval:
        metrics = trainer.evaluate()
        save_metrics(trainer, "eval", metrics)
        results.update(metrics)
    if training_args.do_predict:
        results.update(predict(trainer, task, splits))
    return results


def run_squad(distill_args: DistillationArguments, data_args: FinetuningDataArguments, squad_args: squad.SquadArguments,
              training_args: TrainingArguments, command: str | None) -> dict:
    examples = squad.requested_examples(data_args, squad_args, training_args)
    task_name = squad.task_name(squad_args)
    distillation = prepare_distillation(distill_args, training_args, task_name, LiteBertForQuestionAnswering, {})
    tokenizer = distillation.tokenizer
    max_seq_length = resolve_max_seq_length(data_args, squad.DEFAULT_MAX_SEQ_LENGTH, distillation.student.config)
    squad.check_doc_stride(squad_args, max_seq_length, tokenizer)
    describe_distillation(distillation, task_name, distill_args, data_args, training_args, command)
    train_windows = None
    if "train" in examples:
        train_windows = squad.training_windows(examples["train"], tokenizer, max_seq_length, squad_args, data_args,
                                               training_args)
    trainer = distillation_trainer(distillation, training_args, train_windows)
    results = {"layer_map": distillation.loss.layer_map}
    if training_args.do_train:
        results.update(train(trainer, data_args.auto_resume, train_samples=len(examples["train"])))
    results.update(squad.answer_requested(trainer, examples, tokenizer, max_seq_length, squad_args, data_args))
    return results


def parse_arguments(argv: list[str] | None = None) -> tuple:
    return parse_dataclass_arguments(
        (DistillationArguments, FinetuningDataArguments, DistillationTaskArguments, squad.SquadArguments,
         TrainingArguments),
        argv,
    )


@command("litebert-distill")
def main(argv: list[str] | None = None) -> None:
    run(*parse_arguments(argv), command=command_line("litebert-distill", argv))


if __name__ == "__main__":
    main()
