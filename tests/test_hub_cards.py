"""Model cards: Hub metadata, model-index results per task family, parameter figures, round trip, card refresh."""

import json
import re

import pytest
import torch
import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.repocard_data import model_index_to_eval_results

from litebert import (
    LiteBertConfig,
    LiteBertForMultipleChoice,
    LiteBertForPreTraining,
    LiteBertForQuestionAnswering,
    LiteBertForSequenceClassification,
)
from litebert.hub_cards import build_model_card, check_model_card, model_card_for_folder, write_model_card
from litebert.parameters import parameter_counts

from conftest import tiny_config_kwargs

# What the model-index must hold per task, written out here from the GLUE / SQuAD / RACE definitions:
# task -> [(results key, Hub metric id, dataset id, dataset config, split)]
EXPECTED_ENTRIES = {
    "cola": [("eval_matthews_correlation", "matthews_correlation", "nyu-mll/glue", "cola", "validation")],
    "sst2": [("eval_accuracy", "accuracy", "nyu-mll/glue", "sst2", "validation")],
    "mrpc": [("eval_f1", "f1", "nyu-mll/glue", "mrpc", "validation"),
             ("eval_accuracy", "accuracy", "nyu-mll/glue", "mrpc", "validation")],
    "stsb": [("eval_pearson", "pearsonr", "nyu-mll/glue", "stsb", "validation"),
             ("eval_spearmanr", "spearmanr", "nyu-mll/glue", "stsb", "validation")],
    "qqp": [("eval_f1", "f1", "nyu-mll/glue", "qqp", "validation"),
            ("eval_accuracy", "accuracy", "nyu-mll/glue", "qqp", "validation")],
    "mnli": [("eval_accuracy", "accuracy", "nyu-mll/glue", "mnli", "validation_matched"),
             ("eval_mismatched_accuracy", "accuracy", "nyu-mll/glue", "mnli", "validation_mismatched")],
    "qnli": [("eval_accuracy", "accuracy", "nyu-mll/glue", "qnli", "validation")],
    "rte": [("eval_accuracy", "accuracy", "nyu-mll/glue", "rte", "validation")],
    "wnli": [("eval_accuracy", "accuracy", "nyu-mll/glue", "wnli", "validation")],
    "squad": [("eval_exact", "exact_match", "rajpurkar/squad", None, "validation"),
              ("eval_f1", "f1", "rajpurkar/squad", None, "validation")],
    "squad_v2": [("eval_exact", "exact_match", "rajpurkar/squad_v2", None, "validation"),
                 ("eval_f1", "f1", "rajpurkar/squad_v2", None, "validation")],
    "race": [("eval_accuracy", "accuracy", "ehovy/race", "all", "validation"),
             ("eval_accuracy_middle", "accuracy", "ehovy/race", "middle", "validation"),
             ("eval_accuracy_high", "accuracy", "ehovy/race", "high", "validation")],
}
HEAD_OF_TASK = {"squad": LiteBertForQuestionAnswering, "squad_v2": LiteBertForQuestionAnswering,
                "race": LiteBertForMultipleChoice}
PIPELINE_OF_HEAD = {LiteBertForSequenceClassification: "text-classification",
                    LiteBertForQuestionAnswering: "question-answering",
                    LiteBertForMultipleChoice: "multiple-choice", LiteBertForPreTraining: "fill-mask"}


def saved_model(folder, model_class, **config_overrides):
    torch.manual_seed(0)
    model = model_class(LiteBertConfig(**tiny_config_kwargs(**config_overrides)))
    model.save_pretrained(folder)
    return model


def write_results(folder, results, name="eval_results.json"):
    (folder / name).write_text(json.dumps(results))


def card_metadata(path):
    text = path.read_text(encoding="utf-8")
    return yaml.safe_load(text.split("---")[1])


@pytest.mark.parametrize("task", list(EXPECTED_ENTRIES))
def test_model_index_holds_every_metric_of_the_task_and_round_trips(task, tmp_path):
    head = HEAD_OF_TASK.get(task, LiteBertForSequenceClassification)
    saved_model(tmp_path, head, finetuning_task=task)
    expected = EXPECTED_ENTRIES[task]
    results = {key: 0.5 + index / 100 for index, (key, *_) in enumerate(expected)}
    write_results(tmp_path, {**results, "eval_loss": 0.7, "eval_runtime": 1.0, "epoch": 2.0})

    path = write_model_card(tmp_path)
    eval_results = ModelCard.load(path).data.eval_results
    found = [(r.metric_type, r.dataset_type, r.dataset_config, r.dataset_split, r.metric_value) for r in eval_results]
    assert found == [(metric, dataset, config, split, results[key]) for key, metric, dataset, config, split in expected]

    metadata = card_metadata(path)
    assert metadata["library_name"] == "transformers"
    assert metadata["pipeline_tag"] == PIPELINE_OF_HEAD[head]
    assert metadata["datasets"] == [expected[0][2]]
    assert {"litebert", "albert"} <= set(metadata["tags"])
    # the YAML is read back by huggingface_hub's own parsers without error
    name, parsed = model_index_to_eval_results(metadata["model-index"])
    assert name == tmp_path.name and parsed == eval_results
    assert ModelCardData(**metadata).eval_results == eval_results


def test_round_trip_returns_exactly_the_results_it_was_built_from(tmp_path):
    saved_model(tmp_path, LiteBertForSequenceClassification, finetuning_task="stsb")
    card = model_card_for_folder(tmp_path, extra_results={"eval_pearson": 0.8375123456789, "eval_spearmanr": 0.84861})
    card.save(tmp_path / "README.md")
    built = card.data.eval_results
    assert all(isinstance(result, EvalResult) for result in built) and len(built) == 2
    assert ModelCard.load(tmp_path / "README.md").data.eval_results == built
    assert [result.metric_value for result in built] == [0.8375123456789, 0.84861]


def test_results_files_are_merged_with_eval_results_taking_precedence(tmp_path):
    saved_model(tmp_path, LiteBertForSequenceClassification, finetuning_task="mrpc")
    write_results(tmp_path, {"eval_accuracy": 0.1, "eval_f1": 0.2, "train_loss": 0.5}, "all_results.json")
    write_results(tmp_path, {"eval_accuracy": 0.7})
    values = {r.metric_type: r.metric_value for r in model_card_for_folder(tmp_path).data.eval_results}
    assert values == {"accuracy": 0.7, "f1": 0.2}


def test_pretraining_card_reports_mlm_and_sop_results_and_the_run(tmp_path):
    saved_model(tmp_path, LiteBertForPreTraining)
    write_results(tmp_path, {"eval_mlm_accuracy": 0.13, "eval_perplexity": 692.5, "eval_sop_accuracy": 0.51})
    (tmp_path / "litebert_run.json").write_text(json.dumps({
        "command": "litebert-pretrain --output_dir runs/p --max_steps 10", "dataset_name": None,
        "data_files": ["/data/wikitext-2/train.txt"]}))
    path = write_model_card(tmp_path)
    card = ModelCard.load(path)
    assert card.data.pipeline_tag == "fill-mask"
    assert [(r.metric_name, r.metric_value) for r in card.data.eval_results] == [
        ("MLM accuracy", 0.13), ("Perplexity", 692.5), ("SOP accuracy", 0.51)]
    assert "litebert-pretrain --output_dir runs/p --max_steps 10" in card.text
    assert "`train.txt`" in card.text


def parameter_rows(card_text: str) -> dict[str, int]:
    section = card_text.split("## Parameters")[1].split("##")[0]
    return {label: int(count.replace(",", "")) for label, count in re.findall(r"\| ([^|]+) \| ([\d,]+) \|", section)}


@pytest.mark.parametrize("sharing,groups", [("all", 1), ("ffn", 2), ("none", 1)])
def test_parameter_figures_equal_the_models_own_counts(sharing, groups, tmp_path):
    model = saved_model(tmp_path, LiteBertForSequenceClassification, sharing=sharing, num_hidden_groups=groups)
    counts = parameter_counts(model)
    # built from the folder alone (a meta-device copy of the model is counted), then from the live model
    for card in (model_card_for_folder(tmp_path), model_card_for_folder(tmp_path, model=model)):
        rows = parameter_rows(card.text)
        assert list(rows.values()) == [counts[k] for k in ("total", "embedding", "encoder", "heads", "effective")]
    # independent check of the stored total: the safetensors file holds exactly `total` numbers
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    if sharing == "all":
        assert counts["effective"] > counts["total"]


def test_architecture_switches_and_tags(tmp_path):
    pretraining = tmp_path / "pretraining"
    saved_model(pretraining, LiteBertForPreTraining, position_embedding_type="tupe", relative_attention_num_buckets=8,
                tnf_enabled=True, tnf_num_rare_words=5, sharing="attention", num_hidden_groups=2)
    card = model_card_for_folder(pretraining)
    assert {"tupe", "tupe-r", "tnf"} <= set(card.data.tags)
    text = card.text
    assert ("An ALBERT-style encoder with factorized embeddings (E=16, H=32), cross-layer sharing (attention) and "
            "untied positional attention (TUPE), pretrained with masked language modelling") in text
    for fragment in ("| embedding size E | 16 |", "| hidden size H | 32 |", "| layers L | 4 |",
                     "attention (2 groups of 2 layers)", "TUPE-R relative bias (8 buckets",
                     "yes: 5 rare-word notes"):
        assert fragment in text
    # fine-tuning drops the notes but the card still says TNF was used in pretraining
    fine_tuned = tmp_path / "fine-tuned"
    LiteBertForSequenceClassification.from_pretrained(pretraining).save_pretrained(fine_tuned)
    card = model_card_for_folder(fine_tuned)
    assert "tnf" in card.data.tags and "notes dropped for fine-tuning" in card.text

    plain = tmp_path / "plain"
    saved_model(plain, LiteBertForSequenceClassification, embedding_size=32, sharing="none")
    assert "A BERT-shaped encoder, with a text-classification head" in model_card_for_folder(plain).text
    tags = model_card_for_folder(plain).data.tags
    assert "tupe" not in tags and "tnf" not in tags
    assert "| TNF during pretraining | no |" in model_card_for_folder(plain).text


def test_card_options_and_base_model(tmp_path):
    model = saved_model(tmp_path, LiteBertForSequenceClassification, finetuning_task="sst2")
    (tmp_path / "litebert_run.json").write_text(json.dumps({"command": "litebert-glue ...",
                                                            "base_model": "albert/albert-base-v2"}))
    card = model_card_for_folder(tmp_path, model_name="my-model", repo_id="me/my-model", license="mit",
                                 language=["en", "fr"])
    assert card.data.base_model == "albert/albert-base-v2"
    assert card.data.license == "mit" and card.data.language == ["en", "fr"]
    assert 'AutoModelForSequenceClassification.from_pretrained("me/my-model", trust_remote_code=True)' in card.text
    assert card.text.startswith("\n# my-model") or card.text.lstrip().startswith("# my-model")
    built = build_model_card(model.config, parameter_counts(model), base_model="bert-base-uncased")
    assert built.data.base_model == "bert-base-uncased" and built.data.eval_results is None


def test_unknown_task_and_bad_results_file_are_named(tmp_path):
    saved_model(tmp_path, LiteBertForSequenceClassification, finetuning_task="imdb")
    with pytest.raises(ValueError, match=r"finetuning_task='imdb'.*rte"):
        model_card_for_folder(tmp_path)
    folder = tmp_path / "bad-json"
    saved_model(folder, LiteBertForSequenceClassification, finetuning_task="rte")
    (folder / "eval_results.json").write_text('{"eval_accuracy": 0.5,\n oops}')
    with pytest.raises(ValueError, match=r"eval_results.json, line 2: invalid JSON"):
        model_card_for_folder(folder)
    foreign = tmp_path / "foreign"
    saved_model(foreign, LiteBertForSequenceClassification)
    config = json.loads((foreign / "config.json").read_text())
    (foreign / "config.json").write_text(json.dumps({**config, "architectures": ["BertForMaskedLM"]}))
    with pytest.raises(ValueError, match=r"\['BertForMaskedLM'\] is not a LiteBERT class"):
        model_card_for_folder(foreign)


def test_check_model_card_accepts_ours_and_names_what_is_wrong(tmp_path):
    saved_model(tmp_path, LiteBertForSequenceClassification, finetuning_task="rte")
    write_results(tmp_path, {"eval_accuracy": 0.6})
    path = write_model_card(tmp_path)
    assert check_model_card(path).data.eval_results[0].metric_value == 0.6

    original = path.read_text()
    path.write_text(original.replace("library_name: transformers", "library_name: timm"))
    with pytest.raises(ValueError, match="library_name is 'timm'"):
        check_model_card(path)
    path.write_text(original.replace("type: accuracy", "typo: accuracy"))
    with pytest.raises(ValueError, match="invalid card metadata"):
        check_model_card(path)
    path.write_text("# no metadata\n")
    with pytest.raises(ValueError, match="no YAML metadata"):
        check_model_card(path)
    with pytest.raises(ValueError, match="missing"):
        check_model_card(tmp_path / "nothing.md")
