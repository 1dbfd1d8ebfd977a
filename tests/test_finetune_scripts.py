"""The GLUE, SQuAD and RACE fine-tuning scripts end to end on real data, with a tiny model for speed."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from litebert import LiteBertForSequenceClassification
from litebert.cli import glue, race, squad
from litebert.cli.finetune import parse_arguments

from conftest import SHARED_DATA, write_hub_dataset

GLUE_DATA = SHARED_DATA / "glue"


def common_flags(model, output_dir, *extra):
    return [
        "--model_name_or_path", str(model),
        "--output_dir", str(output_dir),
        "--per_device_train_batch_size", "8",
        "--per_device_eval_batch_size", "16",
        "--learning_rate", "1e-3",
        "--report_to", "none",
        "--use_cpu", "true",
        "--save_strategy", "no",
        "--seed", "0",
        *extra,
    ]


def read_json(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def test_glue_rte_trains_evaluates_and_writes_a_submission(tiny_model, tmp_path):
    test_file = tmp_path / "test.tsv"
    test_file.write_text(
        "index\tsentence1\tsentence2\n"
        "0\tThe cat sat on the mat.\tA cat is sitting.\n"
        "1\tParis is the capital of France.\tBerlin is in France.\n"
        "7\tIt rained all day.\tThe ground is wet.\n",
        encoding="utf-8",
    )
    output = tmp_path / "rte"
    glue.main(common_flags(
        tiny_model, output, "--task_name", "RTE",
        "--train_file", str(GLUE_DATA / "RTE" / "train.tsv"),
        "--validation_file", str(GLUE_DATA / "RTE" / "dev.tsv"),
        "--test_file", str(test_file),
        "--do_train", "--do_eval", "--do_predict", "--max_steps", "4",
        "--max_train_samples", "32", "--max_eval_samples", "32", "--max_seq_length", "64",
    ))
    eval_results = read_json(output / "eval_results.json")
    assert 0.0 <= eval_results["eval_accuracy"] <= 1.0 and eval_results["eval_samples"] == 32
    assert "train_loss" in read_json(output / "all_results.json")
    assert read_json(output / "train_results.json")["train_samples"] == 32
    lines = (output / "RTE.tsv").read_text().splitlines()
    assert lines[0] == "index\tprediction" and [line.split("\t")[0] for line in lines[1:]] == ["0", "1", "7"]
    assert all(line.split("\t")[1] in ("entailment", "not_entailment") for line in lines[1:])
    saved = LiteBertForSequenceClassification.from_pretrained(output)
    assert saved.config.id2label == {0: "entailment", 1: "not_entailment"}
    assert (output / "tokenizer.json").is_file()


def test_glue_stsb_is_a_regression(tiny_model, tmp_path):
    glue.main(common_flags(
        tiny_model, tmp_path, "--task_name", "stsb", "--data_dir", str(GLUE_DATA / "STS-B"),
        "--do_train", "--do_eval", "--max_steps", "3",
        "--max_train_samples", "24", "--max_eval_samples", "24", "--max_seq_length", "64",
    ))
    eval_results = read_json(tmp_path / "eval_results.json")
    assert -1.0 <= eval_results["eval_pearson"] <= 1.0 and -1.0 <= eval_results["eval_spearmanr"] <= 1.0
    assert LiteBertForSequenceClassification.from_pretrained(tmp_path).config.num_labels == 1


def test_glue_converts_a_bert_checkpoint(minilm_folder, tmp_path):
    glue.main(common_flags(
        minilm_folder, tmp_path, "--task_name", "sst2", "--data_dir", str(GLUE_DATA / "SST-2"),
        "--do_train", "--do_eval", "--max_steps", "2",
        "--max_train_samples", "16", "--max_eval_samples", "16", "--max_seq_length", "32",
    ))
    assert 0.0 <= read_json(tmp_path / "eval_results.json")["eval_accuracy"] <= 1.0
    model = LiteBertForSequenceClassification.from_pretrained(tmp_path)
    assert model.config.model_type == "litebert" and model.config.hidden_size == 384


def test_glue_rejects_an_unknown_task_listing_the_known_ones(tiny_model, tmp_path):
    with pytest.raises(SystemExit, match="unknown GLUE task 'mnli2'.*cola.*sst2.*rte.*wnli"):
        glue.load_task("mnli2")


SQUAD_FLAGS = ("--max_seq_length", "128", "--doc_stride", "48", "--max_answer_length", "20", "--n_best_size", "5")


def test_squad_v1_trains_on_answerable_questions_and_scores_dev(tiny_model, tmp_path):
    assert squad.main(common_flags(
        tiny_model, tmp_path, *SQUAD_FLAGS,
        "--train_file", str(SHARED_DATA / "squad" / "train-v2.0.first11articles.json"),
        "--validation_file", str(SHARED_DATA / "squad" / "dev-v1.1.json"),
        "--do_train", "--do_eval", "--max_steps", "3", "--max_train_samples", "24", "--max_eval_samples", "10",
    )) is None  # the console script's exit status: sys.exit(None) is success
    predictions = read_json(tmp_path / "predictions.json")
    assert len(predictions) == 10 and all(isinstance(text, str) for text in predictions.values())
    eval_results = read_json(tmp_path / "eval_results.json")
    assert 0.0 <= eval_results["eval_exact"] <= 100.0 and 0.0 <= eval_results["eval_f1"] <= 100.0
    assert eval_results["eval_total"] == 10
    assert read_json(tmp_path / "all_results.json")["train_samples"] == 24
    assert not (tmp_path / "null_odds.json").exists()


def test_squad_v1_drops_unanswerable_questions_of_a_v2_file(tmp_path):
    data_args, squad_args = parse_arguments(squad.SquadArguments, [
        "--model_name_or_path", "unused", "--output_dir", str(tmp_path),
        "--train_file", str(SHARED_DATA / "squad" / "train-v2.0.first11articles.json"),
    ])[1:3]
    v1_train = squad.load_examples(data_args, squad_args)["train"]
    squad_args.version_2_with_negative = True
    v2_train = squad.load_examples(data_args, squad_args)["train"]
    assert 0 < len(v1_train) < len(v2_train)
    assert not any(v1_train["is_impossible"]) and any(v2_train["is_impossible"])


def test_squad_hub_dataset_layout_loads_like_the_official_json(tmp_path):
    """The first two articles of the official dev-v1.1.json, laid out as the Hub's rajpurkar/squad (one row per
    question, parquet), give the same examples as the JSON file itself."""
    official = read_json(SHARED_DATA / "squad" / "dev-v1.1.json")
    subset = {"version": "1.1", "data": official["data"][:2]}
    (tmp_path / "dev.json").write_text(json.dumps(subset))
    rows = [{"id": qa["id"], "title": article["title"], "context": paragraph["context"], "question": qa["question"],
             "answers": {"text": [a["text"] for a in qa["answers"]],
                         "answer_start": [a["answer_start"] for a in qa["answers"]]}}
            for article in subset["data"] for paragraph in article["paragraphs"] for qa in paragraph["qas"]]
    folder = write_hub_dataset(tmp_path / "hub", {"plain_text": {"validation": rows}})

    def examples(*source):
        data_args, squad_args = parse_arguments(squad.SquadArguments, [
            "--model_name_or_path", "unused", "--output_dir", str(tmp_path), *source])[1:3]
        loaded = squad.load_examples(data_args, squad_args)["validation"]
        return loaded.select_columns(["id", "title", "context", "question", "answers"]).to_list()

    from_json = examples("--validation_file", str(tmp_path / "dev.json"))
    assert len(from_json) == len(rows) > 100
    assert examples("--dataset_name", str(folder)) == from_json


def test_squad_v2_writes_null_odds(tiny_model, tmp_path):
    squad.main(common_flags(
        tiny_model, tmp_path, *SQUAD_FLAGS, "--version_2_with_negative",
        "--validation_file", str(SHARED_DATA / "squad" / "dev-v2.0.cs224n-subset.json"),
        "--do_eval", "--max_eval_samples", "12",
    ))
    null_odds = read_json(tmp_path / "null_odds.json")
    assert len(null_odds) == len(read_json(tmp_path / "predictions.json")) == 12
    eval_results = read_json(tmp_path / "eval_results.json")
    assert {"eval_exact", "eval_f1", "eval_best_f1"} <= set(eval_results)


def test_race_trains_and_reports_accuracy_per_level(tiny_model, tmp_path):
    assert race.main(common_flags(
        tiny_model, tmp_path, "--data_dir", str(SHARED_DATA / "race"), "--train_split", "dev",
        "--do_train", "--do_eval", "--do_predict", "--max_steps", "2", "--max_seq_length", "128",
        "--max_train_samples", "8", "--max_eval_samples", "16", "--max_predict_samples", "6",
    )) is None
    eval_results = read_json(tmp_path / "eval_results.json")
    for key in ("eval_accuracy", "eval_accuracy_middle", "eval_accuracy_high"):
        assert 0.0 <= eval_results[key] <= 1.0
    assert eval_results["eval_count"] == 16 and eval_results["eval_count_middle"] > 0
    answers = read_json(tmp_path / "test_predictions.json")
    assert len(answers) == 6 and set(answers.values()) <= set("ABCD")
    all_results = read_json(tmp_path / "all_results.json")
    assert all_results["train_samples"] == 8 and "train_loss" in all_results


def test_race_reads_a_hub_dataset_name(tiny_model, tmp_path):
    """RACE through --dataset_name: real dev passages laid out as the Hub's ehovy/race (configs middle/high)."""
    configs = {}
    for level in ("middle", "high"):
        rows = []
        for path in sorted((SHARED_DATA / "race" / "dev" / level).glob("*.txt"), key=lambda p: int(p.stem))[:3]:
            passage = read_json(path)
            rows += [{"example_id": passage["id"], "article": passage["article"], "answer": answer,
                      "question": question, "options": options}
                     for question, options, answer in zip(passage["questions"], passage["options"], passage["answers"])]
        configs[level] = {"validation": rows}
    folder = write_hub_dataset(tmp_path / "hub", configs)
    race.main(common_flags(tiny_model, tmp_path / "out", "--dataset_name", str(folder), "--do_eval",
                           "--max_seq_length", "128"))
    eval_results = read_json(tmp_path / "out" / "eval_results.json")
    assert eval_results["eval_count"] == sum(len(c["validation"]) for c in configs.values())
    assert eval_results["eval_count_middle"] == len(configs["middle"]["validation"])


def test_race_names_a_missing_folder(tiny_model, tmp_path):
    data_args, race_args = parse_arguments(race.RaceArguments, common_flags(
        tiny_model, tmp_path, "--data_dir", str(tmp_path), "--do_eval"))[1:3]
    with pytest.raises(SystemExit, match="RACE folder"):
        race.load_split(data_args, race_args, "dev", None, 0)


def final_weights(folder) -> dict:
    return load_file(Path(folder) / "model.safetensors")


@pytest.mark.parametrize("script,flags", [
    (glue, ("--task_name", "rte", "--data_dir", str(GLUE_DATA / "RTE"), "--max_seq_length", "64")),
    (squad, ("--train_file", str(SHARED_DATA / "squad" / "train-v2.0.first11articles.json"), *SQUAD_FLAGS)),
    (race, ("--data_dir", str(SHARED_DATA / "race"), "--train_split", "dev", "--max_seq_length", "128")),
], ids=["glue", "squad", "race"])
def test_the_same_command_and_seed_give_the_same_weights(script, flags, tiny_model, tmp_path):
    """The new head is initialised from --seed: a second identical run in the same process (whose random state the
    first run moved on) ends with bitwise the same weights, and another seed with other weights."""
    def train(output, seed):
        script.main(common_flags(tiny_model, tmp_path / output, *flags, "--do_train", "--max_steps", "2",
                                 "--max_train_samples", "8", "--seed", seed))
        return final_weights(tmp_path / output)

    first, again, other_seed = train("first", "3"), train("again", "3"), train("other", "4")
    assert first.keys() == again.keys()
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert not all(torch.equal(first[name], other_seed[name]) for name in first)
