"""`litebert-distill`: TinyBERT-style distillation of a fine-tuned GLUE teacher into a LiteBERT student.

    litebert-distill --teacher_name_or_path runs/minilm-sst2 --task_name sst2 --data_dir glue_data/SST-2 \\
        --student_preset albert-base --student_config_overrides "hidden_size=384,num_attention_heads=6,..." \\
        --output_dir runs/student-sst2 --do_train --do_eval --num_train_epochs 3 --learning_rate 1e-4

The teacher is any local LiteBERT, BERT or ALBERT folder with a sequence-classification head for the task (BERT and
ALBERT are converted on loading); its tokenizer is the student's. The student is a new LiteBERT of --student_preset
and --student_config_overrides (any sharing mode: a block applied several times is distilled once per application),
or --student_name_or_path (a student from an earlier stage, or a pretrained LiteBERT). --distill_stage intermediate
trains the embedding, hidden-state and attention losses only, prediction the soft-label loss only, all both at once
(TinyBERT trains the first, then the second). The data flags are litebert-glue's. The output folder is a normal
LiteBERT classifier; its card names the teacher. Losses: `litebert.distillation`.
"""

from dataclasses import dataclass, field
from pathlib import Path

from transformers import PreTrainedTokenizerBase, TrainingArguments

from .. import LiteBertConfig, LiteBertForSequenceClassification
from ..distillation import STAGES, DistillationLoss, DistillationTrainer, DistillationWeights, parse_layer_map
from ..tasks.glue import GlueTask, glue_metrics
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
    GlueArguments,
    check_requested_splits,
    label_config,
    limit_for_split,
    load_raw_splits,
    load_task,
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


def build_student(
    args: DistillationArguments, tokenizer: PreTrainedTokenizerBase, task: GlueTask
) -> LiteBertForSequenceClassification:
    """The student: a new LiteBERT classifier over the teacher's vocabulary, or the one given."""
    labels = label_config(task)
    if args.student_name_or_path:
        return load_model(LiteBertForSequenceClassification,
                          FinetuningModelArguments(model_name_or_path=args.student_name_or_path,
                                                   ignore_mismatched_sizes=True), **labels)
    overrides = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
                 "bos_token_id": tokenizer.cls_token_id, "eos_token_id": tokenizer.sep_token_id}
    try:
        preset = LiteBertConfig.from_preset(args.student_preset, **overrides)
    except ValueError as error:
        raise SystemExit(f"--student_preset: {error}") from None
    overrides.update(parse_config_overrides(args.student_config_overrides, preset))
    return LiteBertForSequenceClassification(LiteBertConfig.from_preset(args.student_preset, **overrides, **labels))


def check_teacher(teacher: LiteBertForSequenceClassification, task: GlueTask, path: str) -> None:
    expected = 1 if task.is_regression else len(task.label_names)
    if teacher.config.num_labels != expected:
        raise SystemExit(f"--teacher_name_or_path {path} has a head of {teacher.config.num_labels} labels; "
                         f"{task.name} needs {expected}: distil from a teacher fine-tuned on the task.")


def run(
    distill_args: DistillationArguments,
    data_args: FinetuningDataArguments,
    glue_args: GlueArguments,
    training_args: TrainingArguments,
    command: str | None = None,
) -> dict:
    setup_logging(training_args)
    if distill_args.distill_stage not in STAGES:
        raise SystemExit(f"--distill_stage {distill_args.distill_stage!r} is unknown; allowed: {', '.join(STAGES)}.")
    task = load_task(glue_args.task_name)
    raw_splits = load_raw_splits(task, data_args)
    check_requested_splits(raw_splits, training_args)
    teacher_args = FinetuningModelArguments(model_name_or_path=distill_args.teacher_name_or_path)
    tokenizer = load_tokenizer(teacher_args)
    teacher = load_model(LiteBertForSequenceClassification, teacher_args)
    check_teacher(teacher, task, distill_args.teacher_name_or_path)
    seed_everything(training_args)  # the student's initial weights follow --seed
    student = build_student(distill_args, tokenizer, task)
    weights = DistillationWeights(
        embeddings=distill_args.embedding_loss_weight, hidden=distill_args.hidden_loss_weight,
        attention=distill_args.attention_loss_weight, prediction=distill_args.prediction_loss_weight,
        hard_labels=distill_args.hard_label_weight, temperature=distill_args.temperature)
    layer_map = parse_layer_map(distill_args.layer_map, student.config.num_hidden_layers,
                                teacher.config.num_hidden_layers)
    distillation = DistillationLoss(student.config.hidden_size, teacher.config.hidden_size, layer_map, weights,
                                    distill_args.distill_stage)
    if distillation.needs_attentions:  # only eager attention hands out its attention maps
        teacher.set_attn_implementation("eager")
        student.set_attn_implementation("eager")
    student_source = distill_args.student_name_or_path
    describe_run(student, task.name, command or command_line("litebert-distill", None),
                 FinetuningModelArguments(model_name_or_path=student_source or distill_args.teacher_name_or_path),
                 data_args, training_args, teacher=distill_args.teacher_name_or_path,
                 base_model=None if student_source is None or Path(student_source).exists() else student_source,
                 distillation=f"TinyBERT-style, stage {distill_args.distill_stage}, layer map {layer_map}")

    max_seq_length = resolve_max_seq_length(data_args, DEFAULT_MAX_SEQ_LENGTH, student.config)
    limited = {name: first_samples(dataset, limit_for_split(name, data_args)) for name, dataset in raw_splits.items()}
    with training_args.main_process_first(desc="tokenizing"):
        splits = tokenize(limited, task, tokenizer, max_seq_length, data_args.preprocessing_num_workers)
    eval_dataset = next((dataset for name, dataset in splits.items() if name.startswith("validation")), None)
    trainer = build_trainer(
        student, training_args, tokenizer, splits.get("train"), eval_dataset,
        compute_metrics=lambda prediction: glue_metrics(task, prediction.predictions, prediction.label_ids),
        trainer_class=DistillationTrainer, teacher=teacher, distillation=distillation,
    )
    results = {"layer_map": layer_map}
    if training_args.do_train:
        results.update(train(trainer, data_args.auto_resume, train_samples=len(splits["train"])))
    if training_args.do_eval:
        metrics = trainer.evaluate()
        save_metrics(trainer, "eval", metrics)
        results.update(metrics)
    return results


def parse_arguments(argv: list[str] | None = None) -> tuple:
    return parse_dataclass_arguments(
        (DistillationArguments, FinetuningDataArguments, GlueArguments, TrainingArguments), argv
    )


@command("litebert-distill")
def main(argv: list[str] | None = None) -> None:
    run(*parse_arguments(argv), command=command_line("litebert-distill", argv))


if __name__ == "__main__":
    main()
