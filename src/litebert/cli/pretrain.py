"""`litebert-pretrain`: pretraining of a LiteBERT from raw text, on the stock Trainer: masked LM + sentence order
(ALBERT), or with --objective electra|mc ELECTRA's replaced-token detection or MC-BERT's multiple-choice cloze.

    litebert-pretrain --preset albert-base --train_file corpus.txt --output_dir runs/albert-base \\
        --do_train --do_eval --max_steps 10000 --per_device_train_batch_size 32 --learning_rate 1e-3

Without --train_file/--dataset_name it pretrains on the built-in corpus (docstrings of the Python installation,
see `litebert.default_corpus`). Without --tokenizer_name it trains a Unigram tokenizer on the training text first.
Every `TrainingArguments` flag works (optimizer: AdamW, the stock default; LAMB is not part of torch). The same
command runs under `torchrun --nproc_per_node=N` or `accelerate launch` (data-parallel through the stock Trainer).
Started again with the same command, it resumes from the newest complete checkpoint and reuses the tokenizer it
trained, refusing a checkpoint or tokenizer made from other inputs. --tnf takes notes on the fly for rare words (a
rare-word vocabulary is counted over the corpus and saved as rare_words.json next to the tokenizer).
--objective electra|mc trains a small generator (--generator_hidden_fraction, --generator_layer_fraction) beside the
main model; the output folder is the main model (it fine-tunes like any LiteBERT folder) with the generator in
generator/. --sop false pretrains without sentence-order prediction.
"""

import codecs
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase, TrainingArguments

from .. import LiteBertConfig
from ..configuration_litebert import PRETRAINING_OBJECTIVES
from ..default_corpus import write_docstring_corpus
from ..pretraining_data import (
    DataCollatorForNgramMLM,
    SentenceOrderEpochCallback,
    build_sop_dataset,
    check_max_seq_length,
    load_documents,
)
from ..tokenization import (
    RARE_WORDS_FILE,
    RareWordVocabulary,
    build_rare_word_vocabulary,
    check_special_tokens,
    count_words,
    train_tokenizer,
)
from ..trainer_callbacks import plot_loss_curves
from .common import (
    build_trainer,
    check_local_path,
    check_model_folder,
    command,
    command_line,
    logger,
    parse_config_overrides,
    parse_dataclass_arguments,
    seed_everything,
    setup_logging,
    train,
    write_run_info,
)
from .objectives import OBJECTIVES
from .run_files import file_fingerprints, recorded_match, save_recorded, write_atomically


@dataclass
class PretrainingModelArguments:
    preset: str = field(default="albert-base", metadata={"help": "LiteBertConfig preset for a new model"})
    config_overrides: str | None = field(
        default=None, metadata={"help": "config fields over the preset, e.g. 'hidden_size=256,sharing=ffn'"}
    )
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "continue pretraining this LiteBERT folder instead of a new model"}
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "an existing tokenizer folder; by default one is trained on the corpus"}
    )
    tokenizer_vocab_size: int = field(default=30000, metadata={"help": "vocabulary of a trained tokenizer"})
    lowercase: bool = field(default=True, metadata={"help": "lower-case text in a trained tokenizer"})
    tnf: bool = field(default=False, metadata={"help": "take notes on the fly (TNF) for rare words"})
    tnf_min_count: int = field(default=10, metadata={"help": "rare words: seen at least this often"})
    tnf_max_count: int = field(default=100, metadata={"help": "rare words: seen at most this often"})
    tnf_top_n: int | None = field(
        default=None, metadata={"help": "rare words: the N rarest seen at least tnf_min_count times (no max)"}
    )
    objective: str = field(
        default="mlm", metadata={"help": "mlm (masked LM, ALBERT), electra (replaced-token detection) or mc "
                                         "(MC-BERT's multiple-choice cloze)"}
    )
    generator_hidden_fraction: float | None = field(
        default=None, metadata={"help": "electra/mc: the generator's share of the heads and width (config: 1/3)"}
    )
    generator_layer_fraction: float | None = field(
        default=None, metadata={"help": "electra/mc: the generator's share of the layers (config: 1.0)"}
    )
    discriminator_loss_weight: float | None = field(
        default=None, metadata={"help": "electra/mc: lambda, weight of the main model's loss (config: 50)"}
    )
    mc_num_candidates: int | None = field(
        default=None, metadata={"help": "mc: K candidates per question, the original included (config: 9)"}
    )


@dataclass
class PretrainingDataArguments:
    train_file: list[str] | None = field(default=None, metadata={"help": "text files (blank-line separated documents)"})
    validation_file: list[str] | None = field(default=None, metadata={"help": "held-out text files"})
    dataset_name: str | None = field(default=None, metadata={"help": "a `datasets` dataset with a text column"})
    dataset_config_name: str | None = None
    text_column: str = "text"
    streaming: bool = field(
        default=False, metadata={"help": "stream the corpus instead of loading it (needs --max_steps)"}
    )
    validation_split_percentage: float = field(
        default=5.0, metadata={"help": "share of documents held out when no --validation_file is given"}
    )
    validation_documents: int = field(default=200, metadata={"help": "documents held out when streaming"})
    max_seq_length: int = 128
    short_seq_prob: float = 0.1
    mlm_probability: float = 0.15
    max_ngram: int = 3
    sop: bool = field(default=True, metadata={"help": "sentence-order prediction; false: pairs keep their order"})
    whole_word_masking: bool = field(
        default=True, metadata={"help": "mask n-grams of whole words, as ALBERT; false: n-grams of word pieces"}
    )
    preprocessing_num_workers: int | None = None
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    default_corpus_megabytes: float = field(
        default=8.0, metadata={"help": "size cap of the built-in corpus used when no data is given"}
    )
    auto_resume: bool = field(default=True, metadata={"help": "resume from the newest checkpoint in output_dir"})


def check_text_files(flag: str, paths: list[str]) -> None:
    """Refuse a missing file, one that is not UTF-8 text, or files without any text, naming them, before anything
    reads them (the tokenizer trainer would stop at a non-UTF-8 file with a bare 'stream did not contain valid
    UTF-8', and train on an empty corpus)."""
    for path in paths:
        if not os.path.isfile(path):
            raise SystemExit(f"{flag} {path}: no such file.")
        problem = utf8_problem(path)
        if problem:
            raise SystemExit(f"{flag} {path} is not UTF-8 text: {problem}.")
    if paths and not any(map(has_text, paths)):
        raise SystemExit(f"{flag}: empty corpus, no text in {', '.join(paths)}.")


def has_text(path: str) -> bool:
    with open(path, "rb") as file:
        return any(block.strip() for block in iter(lambda: file.read(1 << 20), b""))


def utf8_problem(path: str) -> str | None:
    """Where the file stops being valid UTF-8 ('line 3 (byte 41): invalid start byte'), or None."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, newlines = 0, 0
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as error:
                line = newlines + block.count(b"\n", 0, error.start) + 1
                return f"line {line} (byte {offset + error.start}): {error.reason}"
            offset, newlines = offset + len(block), newlines + block.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as error:
        return f"it ends inside a character ({error.reason})"
    return None


def prepare_tokenizer(
    model_args: PretrainingModelArguments, train_files: list[str] | None, output_dir: str
) -> PreTrainedTokenizerBase:
    """The tokenizer given by name, or the one trained on the files (by an earlier run of this command, or now)."""
    check_local_path("--tokenizer_name", model_args.tokenizer_name)
    if model_args.model_name_or_path:
        check_model_folder("--model_name_or_path", model_args.model_name_or_path)
    if model_args.tokenizer_name or model_args.model_name_or_path:
        tokenizer = AutoTokenizer.from_pretrained(model_args.tokenizer_name or model_args.model_name_or_path)
    else:
        tokenizer = trained_tokenizer(model_args, train_files, output_dir)
    check_special_tokens(tokenizer)
    return tokenizer


def trained_tokenizer(
    model_args: PretrainingModelArguments, train_files: list[str] | None, output_dir: str
) -> PreTrainedTokenizerBase:
    """The tokenizer an earlier run trained in output_dir on the same files and settings (one trained on others is
    refused), or a new one trained on the files and saved there."""
    if not train_files:
        raise SystemExit("Training a tokenizer needs --train_file; with --dataset_name pass --tokenizer_name.")
    inputs = {"--train_file": file_fingerprints(train_files), "--tokenizer_vocab_size": model_args.tokenizer_vocab_size,
              "--lowercase": model_args.lowercase}
    if recorded_match(output_dir, "tokenizer", inputs, "tokenizer.json"):
        logger.info(f"Reusing the tokenizer in {output_dir}, trained by an earlier run on the same files and settings")
        return AutoTokenizer.from_pretrained(output_dir)
    logger.info(f"Training a Unigram tokenizer ({model_args.tokenizer_vocab_size} pieces) on {train_files}")
    tokenizer = train_tokenizer(train_files, vocab_size=model_args.tokenizer_vocab_size, lowercase=model_args.lowercase)
    save_recorded(output_dir, "tokenizer", inputs, tokenizer.save_pretrained)
    return tokenizer


def corpus_documents(data_args: PretrainingDataArguments) -> datasets.Dataset | datasets.IterableDataset:
    """The training corpus as documents, from --train_file or --dataset_name."""
    return load_documents(
        train_files=data_args.train_file,
        dataset_name=data_args.dataset_name,
        dataset_config=data_args.dataset_config_name,
        text_column=data_args.text_column,
        streaming=data_args.streaming,
    )


def prepare_rare_words(
    model_args: PretrainingModelArguments,
    data_args: PretrainingDataArguments,
    tokenizer: PreTrainedTokenizerBase,
    output_dir: str,
) -> RareWordVocabulary:
    """The rare-word vocabulary of the model continued from (its notes are indexed by it), the one an earlier run of
    this command counted in output_dir, or a new one counted over the training corpus."""
    continued = model_args.model_name_or_path
    if continued and (Path(continued) / RARE_WORDS_FILE).is_file():
        return RareWordVocabulary.load(continued)
    inputs = {**corpus_inputs(data_args), "tokenizer": tokenizer_fingerprint(tokenizer),
              "--tnf_min_count": model_args.tnf_min_count, "--tnf_max_count": model_args.tnf_max_count,
              "--tnf_top_n": model_args.tnf_top_n}
    if recorded_match(output_dir, "rare-word vocabulary", inputs, RARE_WORDS_FILE):
        return RareWordVocabulary.load(output_dir)
    documents = corpus_documents(data_args)
    counts = count_words(documents, tokenizer, num_proc=data_args.preprocessing_num_workers)
    rare_words = build_rare_word_vocabulary(
        counts, tokenizer, model_args.tnf_min_count, model_args.tnf_max_count, model_args.tnf_top_n
    )
    logger.info(f"TNF: {len(rare_words)} rare words out of {len(counts)} distinct words")
    save_recorded(output_dir, "rare-word vocabulary", inputs, rare_words.save)
    return rare_words


def corpus_inputs(data_args: PretrainingDataArguments) -> dict:
    """What identifies the training corpus: the files' contents, or the dataset's name, config and column."""
    if data_args.train_file:
        return {"--train_file": file_fingerprints(data_args.train_file)}
    return {"--dataset_name": data_args.dataset_name, "--dataset_config_name": data_args.dataset_config_name,
            "--text_column": data_args.text_column}


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    return hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()[:16]


OBJECTIVE_FLAGS = ("generator_hidden_fraction", "generator_layer_fraction", "discriminator_loss_weight",
                   "mc_num_candidates")


def build_model(
    model_args: PretrainingModelArguments,
    tokenizer: PreTrainedTokenizerBase,
    rare_words: RareWordVocabulary | None = None,
) -> PreTrainedModel:
    """A new pretraining model of --objective from --preset and --config_overrides, or the one continued from. It
    scores the vocabulary only at masked positions (`sparse_prediction`; a `--config_overrides
    sparse_prediction=false` keeps the dense head), and takes notes for `rare_words` when given."""
    if model_args.objective not in PRETRAINING_OBJECTIVES:
        allowed = ", ".join(PRETRAINING_OBJECTIVES)
        raise SystemExit(f"--objective {model_args.objective!r} is unknown; allowed: {allowed}.")
    model_class = OBJECTIVES[model_args.objective].model_class
    settings = {"sparse_prediction": True, "pretraining_objective": model_args.objective,
                "special_token_ids": sorted(set(tokenizer.all_special_ids))}
    settings.update({name: getattr(model_args, name) for name in OBJECTIVE_FLAGS
                     if getattr(model_args, name) is not None})
    if rare_words is not None:
        settings.update(tnf_enabled=True, tnf_num_rare_words=len(rare_words))
    if model_args.model_name_or_path:
        return model_class.from_pretrained(model_args.model_name_or_path, **settings)
    overrides = {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.cls_token_id,
        "eos_token_id": tokenizer.sep_token_id,
    }
    overrides.update(settings)
    preset = LiteBertConfig.from_preset(model_args.preset, **overrides)
    overrides.update(parse_config_overrides(model_args.config_overrides, preset))
    return model_class(LiteBertConfig.from_preset(model_args.preset, **overrides))


def load_splits(
    data_args: PretrainingDataArguments,
    tokenizer: PreTrainedTokenizerBase,
    max_position_embeddings: int,
    seed: int,
    evaluate: bool,
) -> tuple[datasets.Dataset | datasets.IterableDataset, datasets.Dataset | datasets.IterableDataset | None]:
    """Documents -> SOP examples, split into train and held-out sets by document (never within a document). Without
    `evaluate` no document is held out: all of them train, and the held-out set is None."""
    check_max_seq_length(data_args.max_seq_length, max_position_embeddings)
    documents = corpus_documents(data_args)
    held_out = None
    if evaluate and data_args.validation_file:
        held_out = load_documents(train_files=data_args.validation_file, streaming=data_args.streaming)
    elif evaluate and data_args.streaming:
        held_out = documents.take(data_args.validation_documents)
        documents = documents.skip(data_args.validation_documents)
    elif evaluate:
        if len(documents) < 2:
            raise SystemExit("The corpus has a single document, so none can be held out for evaluation: pass "
                             "--validation_file, or train without --do_eval.")
        fraction = max(data_args.validation_split_percentage / 100, 1 / len(documents))
        split = documents.train_test_split(test_size=fraction, seed=seed)
        documents, held_out = split["train"], split["test"]

    def examples(
        docs: datasets.Dataset | datasets.IterableDataset, limit: int | None, split_seed: int
    ) -> datasets.Dataset | datasets.IterableDataset:
        return build_sop_dataset(
            docs,
            tokenizer,
            max_seq_length=data_args.max_seq_length,
            short_seq_prob=data_args.short_seq_prob,
            seed=split_seed,
            num_proc=data_args.preprocessing_num_workers,
            max_position_embeddings=max_position_embeddings,
            max_examples=limit,
            sentence_order=data_args.sop,
        )

    train_examples = examples(documents, data_args.max_train_samples, seed)
    if data_args.streaming and next(iter(train_examples), None) is None:
        raise SystemExit(f"The streamed corpus has no document left to train on after the "
                         f"{data_args.validation_documents} held out for evaluation: lower --validation_documents, or "
                         "pass --validation_file.")
    held_out_examples = None if held_out is None else examples(held_out, data_args.max_eval_samples, seed + 1)
    return train_examples, held_out_examples


def default_corpus(output_dir: str, megabytes: float, training_args: TrainingArguments) -> list[str]:
    path = Path(output_dir) / "default_corpus.txt"
    with training_args.main_process_first(desc="gathering the default corpus"):
        if not path.is_file():
            counts = write_atomically(path, lambda partial: write_docstring_corpus(partial, max_megabytes=megabytes))
            logger.info(
                f"No --train_file/--dataset_name: built the default corpus {path} from the docstrings of "
                f"{counts['files']} Python source files ({counts['documents']} documents, "
                f"{counts['bytes'] / 1e6:.1f} MB)"
            )
    return [str(path)]


def run(model_args: PretrainingModelArguments, data_args: PretrainingDataArguments, training_args: TrainingArguments,
        command: str | None = None) -> dict:
    setup_logging(training_args)
    os.makedirs(training_args.output_dir, exist_ok=True)
    if not data_args.train_file and not data_args.dataset_name:
        megabytes = data_args.default_corpus_megabytes
        data_args.train_file = default_corpus(training_args.output_dir, megabytes, training_args)
    if data_args.streaming and training_args.max_steps <= 0:
        raise SystemExit("--streaming needs --max_steps: a streamed corpus has no known length.")
    check_text_files("--train_file", data_args.train_file or [])
    check_text_files("--validation_file", data_args.validation_file or [])
    if not data_args.sop:
        training_args.label_names = ["labels"]  # the batches have no sentence_order_label
    if training_args.include_num_input_tokens_seen == "no":
        training_args.include_num_input_tokens_seen = "non_padding"  # for the tokens/s log

    with training_args.main_process_first(desc="tokenizer"):
        tokenizer = prepare_tokenizer(model_args, data_args.train_file, training_args.output_dir)
        rare_words = None
        if model_args.tnf:
            rare_words = prepare_rare_words(model_args, data_args, tokenizer, training_args.output_dir)
    seed_everything(training_args)
    model = build_model(model_args, tokenizer, rare_words)
    write_run_info(training_args, command or command_line("litebert-pretrain", None),
                   dataset_name=data_args.dataset_name, data_files=data_args.train_file or [])
    with training_args.main_process_first(desc="pretraining data"):
        train_dataset, eval_dataset = load_splits(
            data_args, tokenizer, model.config.max_position_embeddings, training_args.seed, training_args.do_eval
        )
    collator = DataCollatorForNgramMLM(
        tokenizer,
        mlm_probability=data_args.mlm_probability,
        max_ngram=data_args.max_ngram,
        whole_word_masking=data_args.whole_word_masking,
        rare_words=rare_words,
    )  # no seed: masks are keyed by --seed and the batch itself, so resumed runs mask as uninterrupted ones
    objective = OBJECTIVES[model_args.objective]
    trainer = build_trainer(
        model,
        training_args,
        tokenizer,
        train_dataset,
        eval_dataset,
        compute_metrics=objective.metrics,
        data_collator=collator,
        preprocess_logits_for_metrics=objective.reduce,
    )
    trainer.add_callback(SentenceOrderEpochCallback(train_dataset))  # new SOP pairs every epoch; eval pairs stay fixed

    results = {"world_size": training_args.world_size}
    initial_log = []
    if training_args.do_eval and training_args.do_train:
        initial = trainer.evaluate()
        results.update({f"initial_{k}": v for k, v in initial.items()})
        initial_log = [{"step": 0, **initial}]
    if training_args.do_train:
        # the saved folder is Hub-ready: safetensors, config with auto_map, modeling code, tokenizer
        results.update(train(trainer, data_args.auto_resume))
    if training_args.do_eval:
        metrics = trainer.evaluate()
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
        results.update(metrics)
    if trainer.is_world_process_zero():
        Path(training_args.output_dir, "pretraining_results.json").write_text(json.dumps(results, indent=2))
        # the callback plotted at the end of training; redraw with the evaluations before and after it
        log_history = initial_log + trainer.state.log_history
        plot_loss_curves(log_history, Path(training_args.output_dir) / "loss_curves.png",
                         objective.plotted_losses, objective.plotted_accuracies)
    return results


def parse_arguments(
    argv: list[str] | None = None,
) -> tuple[PretrainingModelArguments, PretrainingDataArguments, TrainingArguments]:
    return parse_dataclass_arguments((PretrainingModelArguments, PretrainingDataArguments, TrainingArguments), argv)


@command("litebert-pretrain")
def main(argv: list[str] | None = None) -> None:
    run(*parse_arguments(argv), command=command_line("litebert-pretrain", argv))


if __name__ == "__main__":
    main()
