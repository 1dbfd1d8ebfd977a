"""Model cards for LiteBERT folders: Hub metadata, `model-index` results, architecture switches and parameter counts.

    >>> from huggingface_hub import ModelCard
    >>> from litebert.hub_cards import write_model_card
    >>> path = write_model_card("runs/sst2")          # reads config.json, eval_results.json, litebert_run.json
    >>> ModelCard.load(path).data.eval_results        # the results the card was built from

Results come from the `eval_results.json` / `all_results.json` that the Trainer writes; the task they belong to
from `config.finetuning_task` (set by `litebert-glue`, `litebert-squad`, `litebert-race`; none for pretraining); the
training command and data from `litebert_run.json`, which every LiteBERT script writes into its output folder.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from . import modeling_litebert, modeling_objectives
from .configuration_litebert import LiteBertConfig
from .parameters import parameter_counts
from .tasks.glue import GLUE_TASKS
from .tasks.io import DataFormatError, read_json_file

CARD_NAME = "README.md"
RUN_INFO_NAME = "litebert_run.json"
USAGE_HEADING = "## How to use"

# head class name -> Hub pipeline tag; ELECTRA's main model has no MLM head, MC-BERT's keeps one (tied embeddings)
PIPELINE_TAGS = {
    **modeling_litebert.PIPELINE_TAGS,
    modeling_objectives.LiteBertForReplacedTokenDetection.__name__: "feature-extraction",
    modeling_objectives.LiteBertForMultipleChoiceCloze.__name__: "fill-mask",
}
OBJECTIVE_DESCRIPTIONS = {
    "mlm": "masked language modelling and sentence-order prediction",
    "electra": "ELECTRA's replaced-token detection (a small generator corrupts the input)",
    "mc": "MC-BERT's multiple-choice cloze with a reject option (a small meta controller proposes the candidates)",
}
OBJECTIVE_TAGS = {"mlm": [], "electra": ["electra"], "mc": ["mc-bert"]}
# the Auto class a card's usage snippet loads for its pipeline tag (pretraining folders load as masked LMs)
AUTO_CLASS_OF_PIPELINE = {tag: auto for _, auto, tag in modeling_litebert.HEADS if auto != "AutoModelForPreTraining"}
GLUE_DISPLAY_NAMES = {"cola": "CoLA", "sst2": "SST-2", "mrpc": "MRPC", "stsb": "STS-B", "qqp": "QQP",
                      "mnli": "MNLI", "qnli": "QNLI", "rte": "RTE", "wnli": "WNLI"}
# our metric names -> the Hub's metric ids
GLUE_METRIC_TYPES = {"accuracy": "accuracy", "f1": "f1", "matthews_correlation": "matthews_correlation",
                     "pearson": "pearsonr", "spearmanr": "spearmanr"}


@dataclass(frozen=True)
class Benchmark:
    """Where one group of results goes in the model-index: a dataset (and split) and the metrics read from the
    results file, as (results key, Hub metric id, display name)."""

    task_type: str
    task_name: str
    dataset_type: str
    dataset_name: str
    dataset_config: str | None
    dataset_split: str
    metrics: tuple[tuple[str, str, str], ...]


def _glue_benchmarks(task: str) -> list[Benchmark]:
    spec = GLUE_TASKS[task]
    name = GLUE_DISPLAY_NAMES[task]
    task_name = "Text Regression" if spec.is_regression else "Text Classification"

    def benchmark(split: str, prefix: str, suffix: str = "") -> Benchmark:
        metrics = tuple((f"{prefix}_{metric}", GLUE_METRIC_TYPES[metric], metric.replace("_", " ").capitalize())
                        for metric in spec.metrics)
        return Benchmark("text-classification", task_name, "nyu-mll/glue", f"GLUE {name}{suffix}", task, split,
                         metrics)

    if task == "mnli":
        return [benchmark("validation_matched", "eval", " (matched)"),
                benchmark("validation_mismatched", "eval_mismatched", " (mismatched)")]
    return [benchmark("validation", "eval")]


def _squad_benchmark(task: str) -> Benchmark:
    version = "2.0" if task == "squad_v2" else "1.1"
    return Benchmark("question-answering", "Question Answering", f"rajpurkar/{task}", f"SQuAD v{version}", None,
                     "validation", (("eval_exact", "exact_match", "Exact match"), ("eval_f1", "f1", "F1")))


def _race_benchmarks() -> list[Benchmark]:
    # the Hub's RACE configs: "all", "middle" (middle school), "high" (high school)
    return [
        Benchmark("multiple-choice", "Multiple Choice", "ehovy/race", f"RACE ({level})", level, "validation",
                  ((f"eval_accuracy{suffix}", "accuracy", "Accuracy"),))
        for level, suffix in (("all", ""), ("middle", "_middle"), ("high", "_high"))
    ]


def _pretraining_benchmark(run_info: dict) -> Benchmark:
    dataset = run_info.get("dataset_name") or "text"
    files = ", ".join(Path(path).name for path in run_info.get("data_files", [])) or "the default corpus"
    name = run_info.get("dataset_name") or f"held-out documents of {files}"
    return Benchmark("fill-mask", "Masked Language Modeling", dataset, name, None, "held-out",
                     (("eval_mlm_accuracy", "accuracy", "MLM accuracy"),
                      ("eval_perplexity", "perplexity", "Perplexity"),
                      ("eval_sop_accuracy", "accuracy", "SOP accuracy")))


def benchmarks_for_task(task: str | None, run_info: dict | None = None) -> list[Benchmark]:
    """The model-index groups for a `config.finetuning_task` (None: MLM+SOP pretraining)."""
    if task is None:
        return [_pretraining_benchmark(run_info or {})]
    if task in GLUE_TASKS:
        return _glue_benchmarks(task)
    if task in ("squad", "squad_v2"):
        return [_squad_benchmark(task)]
    if task == "race":
        return _race_benchmarks()
    known = [*GLUE_TASKS, "squad", "squad_v2", "race"]
    raise ValueError(f"finetuning_task={task!r} has no model-index layout; expected None (pretraining) or one of "
                     f"{', '.join(known)}")


def eval_results_for(task: str | None, results: dict, run_info: dict | None = None) -> list[EvalResult]:
    """EvalResults for every metric of the task that `results` (a Trainer results dict) holds."""
    eval_results = []
    for benchmark in benchmarks_for_task(task, run_info):
        for key, metric_type, metric_name in benchmark.metrics:
            if key not in results:
                continue
            eval_results.append(EvalResult(
                task_type=benchmark.task_type, task_name=benchmark.task_name,
                dataset_type=benchmark.dataset_type, dataset_name=benchmark.dataset_name,
                dataset_config=benchmark.dataset_config, dataset_split=benchmark.dataset_split,
                metric_type=metric_type, metric_name=metric_name, metric_value=float(results[key]),
            ))
    return eval_results


def dataset_ids(task: str | None, run_info: dict) -> list[str] | None:
    """Hub dataset ids for the card's `datasets` field (local files have none)."""
    if task is None:
        return [run_info["dataset_name"]] if run_info.get("dataset_name") else None
    return sorted({benchmark.dataset_type for benchmark in benchmarks_for_task(task, run_info)})


def read_results(folder: str | Path) -> dict:
    """all_results.json updated with eval_results.json (either may be missing)."""
    results = {}
    for name in ("all_results.json", "eval_results.json"):
        path = Path(folder) / name
        if path.is_file():
            results.update(_read_json(path))
    return results


def read_run_info(folder: str | Path) -> dict:
    path = Path(folder) / RUN_INFO_NAME
    return _read_json(path) if path.is_file() else {}


def _read_json(path: Path) -> dict:
    content = read_json_file(path)  # a syntax error names the file and line
    if not isinstance(content, dict):
        raise DataFormatError(path, "", f"expected a JSON object, found {type(content).__name__}")
    return content


def model_for_counting(config: LiteBertConfig) -> torch.nn.Module:
    """The folder's head class built on the meta device: parameter shapes without memory or weights."""
    architecture = (config.architectures or ["LiteBertModel"])[0]
    model_class = getattr(modeling_litebert, architecture, None) or getattr(modeling_objectives, architecture, None)
    if model_class is None or architecture not in PIPELINE_TAGS:
        raise ValueError(f"config.architectures={config.architectures!r} is not a LiteBERT class; expected one of "
                         f"{', '.join(PIPELINE_TAGS)}")
    with torch.device("meta"):
        return model_class(config)


def build_model_card(
    config: LiteBertConfig,
    counts: dict[str, int],
    results: dict | None = None,
    run_info: dict | None = None,
    *,
    model_name: str = "litebert-model",
    repo_id: str | None = None,
    base_model: str | None = None,
    license: str = "apache-2.0",
    language: str | list[str] = "en",
    extra_tags: list[str] | None = None,
) -> ModelCard:
    """A model card for a LiteBERT model with this config, parameter `counts` (see `parameter_counts`), Trainer
    `results` and the run description written by the scripts (`litebert_run.json`)."""
    run_info = run_info or {}
    task = getattr(config, "finetuning_task", None)
    architecture = (config.architectures or ["LiteBertModel"])[0]
    pipeline_tag = PIPELINE_TAGS.get(architecture, "feature-extraction")
    eval_results = eval_results_for(task, results or {}, run_info) or None
    data = ModelCardData(
        model_name=model_name if eval_results else None,  # the model-index needs it; otherwise it is no Hub field
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        tags=architecture_tags(config) + list(extra_tags or []),
        datasets=dataset_ids(task, run_info),
        language=language,
        license=license,
        base_model=base_model or run_info.get("base_model"),
        eval_results=eval_results,
    )
    body = "\n\n".join([
        f"# {model_name}",
        _summary(config, task, pipeline_tag),
        "## Architecture\n\n" + _architecture_table(config),
        "## Parameters\n\n" + _parameter_table(counts),
        "## Evaluation results\n\n" + _results_table(eval_results),
        "## Training\n\n" + _training_section(run_info),
        f"{USAGE_HEADING}\n\n" + _usage_section(repo_id or model_name, pipeline_tag),
        "## Limitations\n\n" + _limitations(config, task),
    ])
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}\n")


def architecture_tags(config: LiteBertConfig) -> list[str]:
    tags = ["litebert", "albert"]
    if config.uses_tupe:
        tags.append("tupe")
        if config.uses_relative_positions:
            tags.append("tupe-r")
    if tnf_in_pretraining(config):
        tags.append("tnf")
    return tags + OBJECTIVE_TAGS[config.pretraining_objective]


def tnf_in_pretraining(config: LiteBertConfig) -> bool:
    # task heads switch notes off but keep the dictionary size, which is 0 unless TNF was configured
    return config.tnf_enabled or config.tnf_num_rare_words > 0


def model_card_for_folder(folder: str | Path, model: torch.nn.Module | None = None, extra_results: dict | None = None,
                          **card_options) -> ModelCard:
    """The card of a saved LiteBERT folder (config.json; results and run files when present). Pass the live `model`
    when the folder does not hold the config yet (during training); `extra_results` go over the results files."""
    folder = Path(folder)
    config = model.config if model is not None else LiteBertConfig.from_pretrained(folder)
    counts = parameter_counts(model if model is not None else model_for_counting(config))
    card_options.setdefault("model_name", folder.resolve().name)
    results = {**read_results(folder), **(extra_results or {})}
    return build_model_card(config, counts, results, read_run_info(folder), **card_options)


def write_model_card(folder: str | Path, model: torch.nn.Module | None = None, extra_results: dict | None = None,
                     **card_options) -> Path:
    """Write (or refresh) folder/README.md; see `model_card_for_folder`."""
    card = model_card_for_folder(folder, model, extra_results, **card_options)
    path = Path(folder) / CARD_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    card.save(path)
    return path


def write_card_for_upload(folder: str | Path, model: torch.nn.Module, repo_id: str) -> Path:
    """The card `model.push_to_hub` uploads: built from the live model, with the results and run description of the
    folder it was loaded from when that is a local folder."""
    source = Path(model.name_or_path) if model.name_or_path and Path(model.name_or_path).is_dir() else None
    card = build_model_card(
        model.config, parameter_counts(model),
        read_results(source) if source else {}, read_run_info(source) if source else {},
        model_name=repo_id.split("/")[-1], repo_id=repo_id,
    )
    path = Path(folder) / CARD_NAME
    card.save(path)
    return path


def check_model_card(path: str | Path) -> ModelCard:
    """Load a card the way the Hub parses it (YAML header, model-index) and check the fields the Hub needs to
    show it as a transformers model; raise ValueError naming the problem."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} is missing: build it with litebert.hub_cards.write_model_card")
    return check_model_card_text(path.read_text(encoding="utf-8"), path)


def check_model_card_text(text: str, path: str | Path = CARD_NAME) -> ModelCard:
    """`check_model_card` for a card's text; `path` names it in the errors."""
    if not text.lstrip().startswith("---"):
        raise ValueError(f"{path} has no YAML metadata block")
    try:
        card = ModelCard(text)
    except ValueError as err:
        raise ValueError(f"{path}: invalid card metadata: {err}") from None
    if card.data.get("library_name") != "transformers":
        raise ValueError(f"{path}: library_name is {card.data.get('library_name')!r}; expected 'transformers' so "
                         "that the Hub offers the transformers loading snippet")
    if card.data.get("pipeline_tag") not in AUTO_CLASS_OF_PIPELINE:
        raise ValueError(f"{path}: pipeline_tag {card.data.get('pipeline_tag')!r} is not one of "
                         f"{', '.join(AUTO_CLASS_OF_PIPELINE)}")
    return card


def with_usage_for(text: str, repo_id: str) -> str:
    """The card `text` with its "How to use" section rewritten to load `repo_id`; the rest is kept as written. A card
    without that section (written by hand) or without a known pipeline_tag comes back unchanged."""
    start = text.find(f"\n{USAGE_HEADING}\n\n")
    pipeline_tag = ModelCard(text, ignore_metadata_errors=True).data.get("pipeline_tag")
    if start < 0 or pipeline_tag not in AUTO_CLASS_OF_PIPELINE:
        return text
    body_start = start + len(USAGE_HEADING) + 3
    next_heading = text.find("\n## ", body_start)
    end = next_heading if next_heading >= 0 else len(text.rstrip("\n"))
    tail = "\n" if next_heading >= 0 else ""
    return text[:body_start] + _usage_section(repo_id, pipeline_tag) + tail + text[end:]


def _summary(config: LiteBertConfig, task: str | None, pipeline_tag: str) -> str:
    traits = []
    if config.embedding_size != config.hidden_size:
        traits.append(f"factorized embeddings (E={config.embedding_size}, H={config.hidden_size})")
    if config.shares_attention or config.shares_feed_forward:
        traits.append(f"cross-layer sharing ({config.sharing})")
    if config.uses_tupe:
        traits.append("untied positional attention (TUPE)")
    listed = ", ".join(traits[:-1]) + " and " + traits[-1] if len(traits) > 1 else "".join(traits)
    kind = f"An ALBERT-style encoder with {listed}" if traits else "A BERT-shaped encoder"
    if task is not None:
        what = f"fine-tuned on {task_display_name(task)} ({pipeline_tag})"
    elif pipeline_tag in ("fill-mask", "feature-extraction"):
        what = f"pretrained with {OBJECTIVE_DESCRIPTIONS[config.pretraining_objective]}"
    else:
        what = f"with a {pipeline_tag} head"
    return f"{kind}, {what}, built with LiteBERT."


def task_display_name(task: str) -> str:
    if task in GLUE_DISPLAY_NAMES:
        return f"GLUE {GLUE_DISPLAY_NAMES[task]}"
    return {"squad": "SQuAD v1.1", "squad_v2": "SQuAD v2.0", "race": "RACE"}.get(task, task)


def _architecture_table(config: LiteBertConfig) -> str:
    groups = config.num_hidden_groups
    sharing = f"{config.sharing}" + (f" ({groups} groups of {config.layers_per_group} layers)" if groups > 1 else "")
    if config.uses_tupe:
        positions = "TUPE (untied positional attention, shared by all layers)"
        positions += "; [CLS] untied" if config.tupe_untie_cls else ""
        if config.uses_relative_positions:
            positions += (f"; TUPE-R relative bias ({config.relative_attention_num_buckets} buckets, max distance "
                          f"{config.relative_attention_max_distance})")
    else:
        positions = "absolute position embeddings"
    if tnf_in_pretraining(config):
        tnf = (f"yes: {config.tnf_num_rare_words} rare-word notes, weight {config.tnf_note_weight}, momentum "
               f"{config.tnf_momentum}, window {config.tnf_window}")
        tnf += "" if config.tnf_enabled else " (notes dropped for fine-tuning)"
    else:
        tnf = "no"
    rows = [
        ("vocabulary size V", config.vocab_size),
        ("embedding size E", config.embedding_size),
        ("hidden size H", config.hidden_size),
        ("layers L", config.num_hidden_layers),
        ("attention heads", config.num_attention_heads),
        ("feed-forward size", config.intermediate_size),
        ("cross-layer sharing", sharing),
        ("position encoding", positions),
        ("maximum sequence length", config.max_position_embeddings),
        ("TNF during pretraining", tnf),
        ("pretraining objective", _objective_description(config)),
    ]
    return _markdown_table(("setting", "value"), rows)


def _objective_description(config: LiteBertConfig) -> str:
    description = OBJECTIVE_DESCRIPTIONS[config.pretraining_objective]
    if config.pretraining_objective == "mlm":
        return description
    generator = modeling_objectives.generator_config(config)
    description += (f"; generator H={generator.hidden_size}, {generator.num_hidden_layers} layers, "
                    f"lambda={config.discriminator_loss_weight:g}")
    if config.pretraining_objective == "mc":
        description += f", K={config.mc_num_candidates} candidates"
    return description


def _parameter_table(counts: dict[str, int]) -> str:
    rows = [
        ("total (unique, as stored)", f"{counts['total']:,}"),
        ("embeddings (V·E + E·H and positions)", f"{counts['embedding']:,}"),
        ("encoder layers (unique)", f"{counts['encoder']:,}"),
        ("pooler and task head", f"{counts['heads']:,}"),
        ("effective: the same shape without cross-layer sharing", f"{counts['effective']:,}"),
    ]
    return _markdown_table(("parameters", "count"), rows)


def _results_table(eval_results: list[EvalResult] | None) -> str:
    if not eval_results:
        return "No evaluation results were recorded in this folder."
    rows = [(result.dataset_name, result.dataset_split, result.metric_name, f"{result.metric_value:.4f}")
            for result in eval_results]
    return _markdown_table(("dataset", "split", "metric", "value"), rows)


def _training_section(run_info: dict) -> str:
    if not run_info:
        return "No training run is recorded in this folder."
    lines = []
    if run_info.get("command"):
        lines.append(f"```bash\n{run_info['command']}\n```")
    if run_info.get("base_model"):
        lines.append(f"Started from `{run_info['base_model']}`.")
    if run_info.get("teacher"):
        method = run_info.get("distillation", "TinyBERT-style")
        lines.append(f"Distilled from the teacher `{run_info['teacher']}` ({method}).")
    data = [run_info["dataset_name"]] if run_info.get("dataset_name") else []
    data += [Path(path).name for path in run_info.get("data_files", [])]
    if data:
        lines.append("Data: " + ", ".join(f"`{item}`" for item in data) + ".")
    return "\n\n".join(lines)


def _usage_section(repo_id: str, pipeline_tag: str) -> str:
    auto_class = AUTO_CLASS_OF_PIPELINE[pipeline_tag]
    return (
        "With the package (`pip install litebert`), the Auto classes know LiteBERT:\n\n"
        f"```python\nimport litebert\nfrom transformers import AutoTokenizer, {auto_class}\n\n"
        f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")\n'
        f'model = {auto_class}.from_pretrained("{repo_id}")\n```\n\n'
        "Without it, stock transformers runs the modeling code shipped in this repository:\n\n"
        f"```python\nfrom transformers import AutoTokenizer, {auto_class}\n\n"
        f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}", trust_remote_code=True)\n'
        f'model = {auto_class}.from_pretrained("{repo_id}", trust_remote_code=True)\n```'
    )


def _limitations(config: LiteBertConfig, task: str | None) -> str:
    notes = []
    if task is None:
        notes.append("A pretrained encoder: fine-tune it before using it for a downstream task.")
    else:
        notes.append("The results above are on the validation split named; they were not tuned on a test set.")
    if config.uses_tupe:
        notes.append("TUPE attention needs the eager, sdpa or flex attention implementation; flash attention is "
                     "refused because it cannot add the positional term.")
    notes.append(f"Inputs longer than {config.max_position_embeddings} tokens must be truncated or split.")
    notes.append("The model inherits the biases of its training data.")
    return "\n".join(f"- {note}" for note in notes)


def _markdown_table(header: tuple[str, ...], rows: Iterable[Iterable]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


modeling_litebert.BEFORE_UPLOAD_HOOKS.append(write_card_for_upload)
