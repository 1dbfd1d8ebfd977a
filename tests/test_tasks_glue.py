import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from litebert.tasks.glue import (
    GLUE_TASKS,
    get_glue_task,
    glue_metrics,
    load_glue_split,
    read_glue_tsv,
    write_glue_predictions,
)
from litebert.tasks.io import DataFormatError

from conftest import write_hub_dataset


@pytest.fixture(scope="module")
def glue(shared_data):
    return shared_data / "glue"


# published counts (shared/data/README.md): rows and, per label string, rows with that label
REAL_FILES = [
    ("sst2", "SST-2/train.tsv", 67349, {"0": 29780, "1": 37569}),
    ("sst2", "SST-2/dev.tsv", 872, {"0": 428, "1": 444}),
    ("cola", "CoLA/train.tsv", 8551, {"0": 2528, "1": 6023}),
    ("cola", "CoLA/dev.tsv", 1043, {"0": 322, "1": 721}),
    ("mrpc", "MRPC/train.tsv", 3668, {"0": 1194, "1": 2474}),
    ("mrpc", "MRPC/dev.tsv", 408, {"0": 129, "1": 279}),
    ("rte", "RTE/train.tsv", 2490, {"entailment": 1249, "not_entailment": 1241}),
    ("rte", "RTE/dev.tsv", 277, {"entailment": 146, "not_entailment": 131}),
    ("stsb", "STS-B/train.tsv", 5749, None),
    ("stsb", "STS-B/dev.tsv", 1500, None),
    ("qnli", "QNLI/dev.tsv", 5463, {"entailment": 2702, "not_entailment": 2761}),
]


def _pandas_reference(task, path):
    """The same file read independently: pandas with quoting off, as the data README advises."""
    headerless = task == "cola"
    frame = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False,
                        encoding="utf-8-sig", header=None if headerless else 0)
    if headerless:
        return list(frame[3]), None, list(frame[1])
    spec = GLUE_TASKS[task]
    first, *second = spec.tsv_text_columns
    return list(frame[first]), list(frame[second[0]]) if second else None, list(frame[spec.tsv_label_column])


@pytest.mark.parametrize("task, name, rows, label_counts", REAL_FILES, ids=[f[1] for f in REAL_FILES])
def test_real_glue_files_match_published_counts_and_pandas(glue, task, name, rows, label_counts):
    spec = GLUE_TASKS[task]
    read = read_glue_tsv(glue / name, task)
    assert len(read) == rows
    assert [r["idx"] for r in read] == list(range(rows))  # these files number rows 0, 1, ...

    sentence1, sentence2, labels = _pandas_reference(task, glue / name)
    assert [r["sentence1"] for r in read] == sentence1
    assert [r["sentence2"] for r in read] == (sentence2 or [None] * rows)
    if spec.is_regression:
        assert [r["label"] for r in read] == [float(x) for x in labels]
        assert all(0.0 <= r["label"] <= 5.0 for r in read)
    else:
        assert [spec.tsv_labels[r["label"]] for r in read] == labels
        assert Counter(spec.tsv_labels[r["label"]] for r in read) == label_counts


def test_mrpc_bom_header_and_unbalanced_quote_are_plain_text(glue):
    rows = read_glue_tsv(glue / "MRPC/dev.tsv", "mrpc")
    # line 2 of the file opens a quote it never closes; csv quoting would swallow lines
    assert rows[0]["sentence2"] == '"The foodservice pie business does not fit our long-term growth strategy.'
    assert rows[0]["label"] == 1
    assert not any(r["sentence1"].startswith(("\ufeff", "Quality", "#1")) for r in rows)


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


MNLI_TRAIN = "\t".join("index promptID pairID genre sentence1_binary_parse sentence2_binary_parse "
                       "sentence1_parse sentence2_parse sentence1 sentence2 label1 gold_label".split())
MNLI_DEV = "\t".join("index promptID pairID genre sentence1_binary_parse sentence2_binary_parse sentence1_parse "
                     "sentence2_parse sentence1 sentence2 label1 label2 label3 label4 label5 gold_label".split())
MNLI_TEST = "\t".join("index promptID pairID genre sentence1_binary_parse sentence2_binary_parse "
                      "sentence1_parse sentence2_parse sentence1 sentence2".split())


def _mnli_row(index, premise, hypothesis, *labels):
    return "\t".join([str(index), "1", "1e", "fiction", "( a )", "( b )", "(ROOT a)", "(ROOT b)",
                      premise, hypothesis, *labels])


def test_mnli_folder_gives_matched_and_mismatched_splits(tmp_path):
    _write(tmp_path / "train.tsv", [MNLI_TRAIN, _mnli_row(0, "P0", "H0", "neutral", "neutral")])
    _write(tmp_path / "dev_matched.tsv", [MNLI_DEV, _mnli_row(7, 'He said "hi', "H1", *["contradiction"] * 6)])
    _write(tmp_path / "dev_mismatched.tsv", [MNLI_DEV, _mnli_row(3, "P2", "H2", *["entailment"] * 6)])
    _write(tmp_path / "test_matched.tsv", [MNLI_TEST, _mnli_row(11, "P3", "H3")])

    splits = load_glue_split("MNLI", data_dir=tmp_path)
    assert sorted(splits) == ["test_matched", "train", "validation_matched", "validation_mismatched"]
    assert splits["train"][0] == {"sentence1": "P0", "sentence2": "H0", "label": 1, "idx": 0}
    assert splits["validation_matched"][0] == {"sentence1": 'He said "hi', "sentence2": "H1", "label": 2, "idx": 7}
    assert splits["validation_mismatched"][0]["label"] == 0
    assert splits["test_matched"][0] == {"sentence1": "P3", "sentence2": "H3", "label": None, "idx": 11}


def test_test_files_without_labels_and_other_layouts(tmp_path):
    cola = read_glue_tsv(_write(tmp_path / "cola.tsv", ["index\tsentence", "0\tBill left.", "1\tLeft Bill."]), "cola")
    assert cola == [{"sentence1": "Bill left.", "sentence2": None, "label": None, "idx": 0},
                    {"sentence1": "Left Bill.", "sentence2": None, "label": None, "idx": 1}]
    qqp = _write(tmp_path / "qqp.tsv", ["id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate", "5\t1\t2\tA?\tB?\t1"])
    assert read_glue_tsv(qqp, "qqp") == [{"sentence1": "A?", "sentence2": "B?", "label": 1, "idx": 5}]
    qqp_test = _write(tmp_path / "qqp_test.tsv", ["id\tquestion1\tquestion2", "9\tC?\tD?"])
    assert read_glue_tsv(qqp_test, "qqp") == [{"sentence1": "C?", "sentence2": "D?", "label": None, "idx": 9}]
    wnli = _write(tmp_path / "wnli.tsv", ["index\tsentence1\tsentence2\tlabel", "0\tS1\tS2\t1", "", "1\tS3\tS4\t0"])
    assert [(r["label"], r["idx"]) for r in read_glue_tsv(wnli, "wnli")] == [(1, 0), (0, 1)]  # blank line skipped
    stsb_test = _write(tmp_path / "sts_test.tsv", [
        "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2",
        "0\tmain-news\theadlines\t2015\t0001\tnone\tnone\tA cat.\tA dog."])
    assert read_glue_tsv(stsb_test, "stsb")[0]["label"] is None


@pytest.mark.parametrize("task, lines, line_number, expected", [
    ("rte", ["index\tsentence1\tsentence2\tlabel", "0\ta\tb\tentailment", "1\tonly three\tentailment"],
     3, "expected 4 tab-separated columns"),
    ("rte", ["index\tsentence1\tsentence2\tlabel", "0\ta\tb\tmaybe"], 2, "unknown label 'maybe'"),
    ("sst2", ["sentence\tlabel", "good film \t1", "bad film \t2"], 3, "unknown label '2'"),
    ("stsb", ["index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore",
              "0\tg\tf\t2012\t0\tnone\tnone\tA.\tB.\tfour"], 2, "numeric similarity score"),
    ("cola", ["gj04\t1\t\tFine.", "gj04\t1\tThe sentence lost a column."], 2, "expected 4 tab-separated columns"),
    ("qnli", ["index\tquestion\tsentence\tlabel", "x\tQ?\tS.\tentailment"], 2, "expected an integer index"),
    ("mrpc", ["1\t1\t2\tno header here\tnone"], 1, "expected a header row"),
])
def test_malformed_tsv_names_file_and_line(tmp_path, task, lines, line_number, expected):
    path = _write(tmp_path / f"broken_{task}.tsv", lines)
    with pytest.raises(ValueError) as error:
        read_glue_tsv(path, task)
    message = str(error.value)
    assert f"broken_{task}.tsv" in message
    assert f"line {line_number}:" in message
    assert expected in message


STSB_HEADER = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"


@pytest.mark.parametrize("task, name, content, split, expected", [
    ("rte", "train.tsv", "index\tsentence1\tsentence2\n0\tA.\tB.\n", "train",
     "train.tsv, line 1: no label column 'label' (found index, sentence1, sentence2)"),
    ("rte", "train.jsonl", '{"sentence1": "A.", "sentence2": "B."}\n', "train",
     "train.jsonl: no label column 'label' (found sentence1, sentence2)"),
    ("rte", "dev.jsonl", '{"sentence1": "A.", "sentence2": "B.", "label": -1}\n', "validation",
     "dev.jsonl, row 1: label -1 marks an unlabelled (test) row"),
    ("rte", "train.tsv", "", "train", "train.tsv: the file is empty; expected the GLUE rte train split"),
    ("sst2", "dev.tsv", "\n\n", "validation", "dev.tsv: the file is empty; expected the GLUE sst2 validation split"),
    ("rte", "dev.tsv", "index\tsentence1\tsentence2\tlabel\n", "validation", "dev.tsv: no data rows, only a header"),
    ("rte", "train.csv", "sentence1,sentence2,label\n", "train", "train.csv: cannot be read as CSV rows"),
    ("stsb", "train.tsv", f"{STSB_HEADER}\n0\tg\tf\t2012\t0\tnone\tnone\tA.\tB.\t3.2\n"
     "1\tg\tf\t2012\t1\tnone\tnone\tC.\tD.\t7.5\n", "train",
     "train.tsv, line 3: similarity score '7.5' is outside 0-5"),
    ("stsb", "dev.tsv", f"{STSB_HEADER}\n0\tg\tf\t2012\t0\tnone\tnone\tA.\tB.\t-0.25\n", "validation",
     "dev.tsv, line 2: similarity score '-0.25' is outside 0-5"),
], ids=["tsv-without-labels", "jsonl-without-labels", "unlabelled-row", "empty", "blank", "header-only",
        "csv-header-only", "stsb-score-above-5", "stsb-score-below-0"])
def test_unusable_training_and_validation_files_are_refused(tmp_path, task, name, content, split, expected):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    source = {"train": "train_file", "validation": "validation_file"}[split]
    with pytest.raises(DataFormatError) as error:
        load_glue_split(task, **{source: path}, cache_dir=str(tmp_path / "cache"))
    assert str(error.value).startswith(str(tmp_path))
    assert expected in str(error.value)


def test_test_files_may_leave_the_labels_out(tmp_path):
    rte = _write(tmp_path / "test.tsv", ["index\tsentence1\tsentence2", "0\tA.\tB."])
    assert load_glue_split("rte", test_file=rte)["test"][0]["label"] is None
    stsb = _write(tmp_path / "sts_test.jsonl", ['{"sentence1": "A.", "sentence2": "B.", "label": -1}'])
    assert load_glue_split("stsb", test_file=stsb, cache_dir=str(tmp_path / "cache"))["test"][0]["label"] is None


def test_jsonl_and_csv_files_load_like_the_tsv(glue, tmp_path):
    tsv_rows = read_glue_tsv(glue / "RTE/dev.tsv", "rte")
    jsonl = tmp_path / "rte_dev.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in tsv_rows), encoding="utf-8")
    loaded = load_glue_split("rte", validation_file=jsonl, cache_dir=str(tmp_path / "cache"))
    assert list(loaded) == ["validation"]
    assert loaded["validation"].to_list() == tsv_rows

    # Hub column names (premise/hypothesis) with label names as strings, no idx column
    csv_path = tmp_path / "mnli.csv"
    pd.DataFrame({"premise": ["P, with comma", "Q"], "hypothesis": ["H", 'say "x"'],
                  "label": ["neutral", "contradiction"]}).to_csv(csv_path, index=False)
    loaded = load_glue_split("mnli", train_file=csv_path, cache_dir=str(tmp_path / "cache"))
    assert loaded["train"].to_list() == [
        {"sentence1": "P, with comma", "sentence2": "H", "label": 1, "idx": 0},
        {"sentence1": "Q", "sentence2": 'say "x"', "label": 2, "idx": 1},
    ]


def test_csv_with_missing_or_bad_columns_names_them(tmp_path):
    missing = tmp_path / "qnli.csv"
    pd.DataFrame({"question": ["Q?"], "label": [0]}).to_csv(missing, index=False)
    with pytest.raises(ValueError, match=r"qnli\.csv: missing column\(s\) sentence"):
        load_glue_split("qnli", validation_file=missing, cache_dir=str(tmp_path / "cache"))

    bad_label = tmp_path / "sst2.jsonl"
    bad_label.write_text('{"sentence": "ok", "label": 1}\n{"sentence": "hm", "label": 7}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"sst2\.jsonl, row 2: unknown label 7"):
        load_glue_split("sst2", train_file=bad_label, cache_dir=str(tmp_path / "cache"))


def test_hub_loading_offline_fails_with_a_clear_message(monkeypatch, tmp_path):
    import datasets
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(RuntimeError, match=r"nyu-mll/glue.*pass data_dir=.*train_file="):
        load_glue_split("rte", cache_dir=str(tmp_path))


def test_hub_dataset_layout_loads_like_the_original_tsv(glue, tmp_path):
    """RTE as the Hub's nyu-mll/glue holds it (config "rte", parquet, integer labels named by the task), built here
    from the real TSV with the csv module, loads to the same rows as the TSV folder."""
    label_names = ("entailment", "not_entailment")  # the Hub's ClassLabel names for RTE
    splits = {}
    for split, name in (("train", "train.tsv"), ("validation", "dev.tsv")):
        with open(glue / "RTE" / name, encoding="utf-8", newline="") as f:
            records = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
        splits[split] = [{"sentence1": r["sentence1"], "sentence2": r["sentence2"],
                          "label": label_names.index(r["label"]), "idx": int(r["index"])} for r in records]
    folder = write_hub_dataset(tmp_path / "glue", {"rte": splits})

    from_hub = load_glue_split("rte", dataset_name=str(folder), cache_dir=str(tmp_path / "cache"))
    from_tsv = load_glue_split("rte", data_dir=glue / "RTE")
    assert sorted(from_hub) == ["train", "validation"]
    for split in ("train", "validation"):
        assert from_hub[split].to_list() == from_tsv[split].to_list()
    assert from_hub["validation"].num_rows == 277


def test_task_table():
    assert sorted(GLUE_TASKS) == sorted(["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"])
    for spec in GLUE_TASKS.values():
        if not spec.is_regression:
            assert len(spec.tsv_labels) == len(spec.label_names) == spec.num_labels
    assert get_glue_task("SST-2") is GLUE_TASKS["sst2"] and get_glue_task("sts-b") is GLUE_TASKS["stsb"]
    assert GLUE_TASKS["mnli"].split_files["validation_mismatched"] == "dev_mismatched.tsv"
    with pytest.raises(ValueError, match="unknown GLUE task"):
        get_glue_task("squad")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_sklearn_and_scipy(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=500)
    predictions = np.where(rng.random(500) < 0.7, labels, 1 - labels)
    assert glue_metrics("cola", predictions, labels)["matthews_correlation"] == pytest.approx(
        matthews_corrcoef(labels, predictions), abs=1e-12)
    for task in ("mrpc", "qqp"):
        metrics = glue_metrics(task, predictions, labels)
        assert metrics["f1"] == pytest.approx(f1_score(labels, predictions), abs=1e-12)
        assert metrics["accuracy"] == pytest.approx(accuracy_score(labels, predictions), abs=1e-12)

    nli_labels = rng.integers(0, 3, size=300)
    logits = rng.normal(size=(300, 3))  # logits go through argmax
    assert glue_metrics("mnli", logits, nli_labels) == {
        "accuracy": pytest.approx(accuracy_score(nli_labels, logits.argmax(1)), abs=1e-12)}

    gold = rng.uniform(0, 5, size=400).round(1)  # rounding makes ties, which Spearman must average
    scores = (gold + rng.normal(scale=1.0, size=400)).round(1)
    metrics = glue_metrics("stsb", scores[:, None], gold)  # a [n, 1] regression output
    assert metrics["pearson"] == pytest.approx(pearsonr(scores, gold)[0], abs=1e-12)
    assert metrics["spearmanr"] == pytest.approx(spearmanr(scores, gold)[0], abs=1e-12)


def test_metric_edge_cases():
    assert glue_metrics("cola", [1, 1, 1], [1, 0, 1])["matthews_correlation"] == 0.0  # constant predictions
    assert glue_metrics("mrpc", [0, 0], [1, 0]) == {"f1": 0.0, "accuracy": 0.5}
    # 2 predicted positives, 1 right; 2 true positives: P = R = 1/2
    assert glue_metrics("qqp", [1, 1, 0, 0], [1, 0, 1, 0])["f1"] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        glue_metrics("rte", [0, 1], [0])


def test_submission_files(tmp_path):
    mnli = write_glue_predictions("mnli", np.eye(3)[[2, 0, 1]], tmp_path / "MNLI-m.tsv")
    assert Path(mnli).read_text().splitlines() == ["index\tprediction", "0\tcontradiction", "1\tentailment",
                                                  "2\tneutral"]
    cola = write_glue_predictions("cola", [1, 0], tmp_path / "out" / "CoLA.tsv", indices=[10, 11])
    assert Path(cola).read_text().splitlines() == ["index\tprediction", "10\t1", "11\t0"]
    stsb = write_glue_predictions("stsb", [-0.2, 2.71828, 5.6], tmp_path / "STS-B.tsv")
    assert Path(stsb).read_text().splitlines() == ["index\tprediction", "0\t0.000", "1\t2.718", "2\t5.000"]
    rte = write_glue_predictions("rte", [1], tmp_path / "RTE.tsv")
    assert Path(rte).read_text().splitlines()[1] == "0\tnot_entailment"
    with pytest.raises(ValueError):
        write_glue_predictions("rte", [1, 0], tmp_path / "x.tsv", indices=[0])
