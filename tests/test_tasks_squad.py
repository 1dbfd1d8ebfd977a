import json
import logging
import unicodedata

import numpy as np
import pytest

from litebert.tasks.squad import (
    CLS_INDEX,
    exact_match,
    f1_score,
    normalize_answer,
    postprocess_predictions,
    prepare_train_features,
    prepare_validation_features,
    read_squad,
    squad_evaluate,
)


@pytest.fixture(scope="module")
def squad_data(shared_data):
    return shared_data / "squad"


@pytest.fixture(scope="module")
def tokenizer(wordpiece_tokenizer):
    return wordpiece_tokenizer


# ----------------------------------------------------------------------------- reading


@pytest.mark.parametrize("name, is_v2, questions, answerable", [
    ("dev-v1.1.json", False, 10570, 10570),
    ("dev-v2.0.cs224n-subset.json", True, 6078, 2910),
    ("train-v2.0.first11articles.json", True, 5147, 4799),
])
def test_real_files_match_published_counts(squad_data, name, is_v2, questions, answerable):
    squad = read_squad(squad_data / name)
    assert squad.version_2_with_negative is is_v2
    assert len(squad.examples) == questions
    assert len({ex["id"] for ex in squad.examples}) == questions
    assert sum(not ex["is_impossible"] for ex in squad.examples) == answerable
    assert sum(bool(ex["answers"]["text"]) for ex in squad.examples) == answerable
    assert squad.misaligned_answers == 0


def _squad_file(tmp_path, qas, context="Paris is the capital of France.", **top):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({**top, "data": [{"title": "T", "paragraphs": [{"context": context, "qas": qas}]}]}))
    return path


def test_reader_reports_missing_keys_with_their_place(tmp_path):
    qas = [{"id": "q0", "question": "Capital?", "answers": [{"text": "Paris", "answer_start": 0}]},
           {"id": "q1", "answers": [{"text": "France", "answer_start": 24}]}]
    with pytest.raises(ValueError, match=r"tiny\.json, data\[0\]\.paragraphs\[0\]\.qas\[1\]: missing key 'question'"):
        read_squad(_squad_file(tmp_path, qas))

    qas = [{"id": "q0", "question": "Capital?", "answers": [{"text": "Paris"}]}]
    with pytest.raises(ValueError, match=r"qas\[0\]\.answers\[0\]: missing key 'answer_start'"):
        read_squad(_squad_file(tmp_path, qas))

    broken = tmp_path / "broken.json"
    broken.write_text('{"version": "1.1",\n "data": [\n  {"title": "x",}\n ]}')
    with pytest.raises(ValueError, match=r"broken\.json, line 3: invalid JSON"):
        read_squad(broken)


def test_reader_counts_misaligned_answers_and_detects_version(tmp_path, caplog):
    qas = [{"id": "q0", "question": "Capital?", "answers": [{"text": "Paris", "answer_start": 0},
                                                            {"text": "Paris", "answer_start": 3}]}]
    with caplog.at_level(logging.WARNING):
        squad = read_squad(_squad_file(tmp_path, qas, version="1.1"))
    assert squad.misaligned_answers == 1 and not squad.version_2_with_negative
    assert "1 of 2 answers" in caplog.text
    assert squad.examples[0] == {"id": "q0", "title": "T", "context": "Paris is the capital of France.",
                                 "question": "Capital?", "is_impossible": False,
                                 "answers": {"text": ["Paris", "Paris"], "answer_start": [0, 3]}}

    unanswerable = [{"id": "q1", "question": "Capital of Peru?", "answers": [], "is_impossible": True}]
    assert read_squad(_squad_file(tmp_path, unanswerable)).version_2_with_negative  # from is_impossible
    no_flag = [{"id": "q1", "question": "Capital of Peru?", "answers": []}]
    assert read_squad(_squad_file(tmp_path, no_flag, version="v2.0")).examples[0]["is_impossible"]
    with pytest.raises(ValueError, match="no answers.*version_2_with_negative=True"):
        read_squad(_squad_file(tmp_path, no_flag, version="1.1"))


def test_a_file_whose_offsets_mostly_miss_the_answers_is_refused(squad_data, tmp_path):
    """Real dev-v1.1 articles with every answer_start moved by one character, as offsets counted from 1 would be:
    nearly all answers then miss, which only a warning announced before."""
    official = json.loads((squad_data / "dev-v1.1.json").read_text(encoding="utf-8"))
    articles = official["data"][:2]
    missed = total = 0
    for article in articles:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                for answer in qa["answers"]:
                    answer["answer_start"] += 1
                    start, text = answer["answer_start"], answer["text"]
                    missed += paragraph["context"][start:start + len(text)] != text
                    total += 1
    shifted = tmp_path / "shifted.json"
    shifted.write_text(json.dumps({"version": "1.1", "data": articles}))
    assert missed > total / 2
    with pytest.raises(ValueError) as error:
        read_squad(shifted)
    assert str(error.value).startswith(f"{shifted}: {missed} of {total} answers are not found at their answer_start")


# ----------------------------------------------------------------------------- evaluation


def test_normalization_and_per_answer_scores():
    assert normalize_answer("The  Quick, Brown fox!") == "quick brown fox"
    assert normalize_answer("An apple a day") == "apple day"
    assert normalize_answer("theatre and anatomy") == "theatre and anatomy"  # only whole words go
    assert normalize_answer(" 1,000\t(approx.) ") == "1000 approx"
    assert exact_match("Denver Broncos", "the denver broncos.") == 1
    assert exact_match("Broncos", "Denver Broncos") == 0
    # prediction tokens cat sat on mat, gold cat on mat: P = 3/4, R = 1, F1 = 2 * 3/4 / (7/4) = 6/7
    assert f1_score("the cat sat on the mat", "a cat on a mat") == pytest.approx(6 / 7)
    # tokens count with multiplicity: pred cat x3, gold cat x2 + dog; 2 shared, P = R = 2/3
    assert f1_score("the cat cat cat", "cat dog cat") == pytest.approx(2 / 3)
    assert f1_score("Paris", "London") == 0.0
    assert f1_score("", "") == 1.0 and f1_score("", "Paris") == 0.0 and f1_score("Paris", "the") == 0.0


def _example(qid, golds):
    return {"id": qid, "context": "", "question": "", "is_impossible": not golds,
            "answers": {"text": golds, "answer_start": [0] * len(golds)}}


def test_v1_scores_take_the_best_gold_and_keep_the_v1_quirks():
    examples = [_example("a", ["Denver Broncos", "Broncos"]), _example("b", ["Carolina Panthers"]),
                _example("c", ["interventionism", "."]), _example("d", ["Santa Clara"])]
    predictions = {"a": "Broncos team", "b": "", "c": ""}  # no prediction for d
    result = squad_evaluate(examples, predictions, version_2_with_negative=False)
    # a: EM 0; F1 vs "Denver Broncos" P = R = 1/2 -> 1/2, vs "Broncos" P = 1/2, R = 1 -> 2/3; best 2/3
    # b: empty prediction scores 0. d: missing, scores 0 and still counts.
    # c: "" and the gold "." both normalize to "", so EM = 1, but v1.1 F1 is 0 for a prediction without tokens
    assert result == {"exact": pytest.approx(25.0), "f1": pytest.approx(100 * (2 / 3) / 4), "total": 4}


def test_v2_scores_no_answers_thresholds_and_best_thresholds():
    examples = [_example("q1", ["Paris"]), _example("q2", ["blue whale"]), _example("q3", []), _example("q4", []),
                _example("q5", ["interventionism", "."])]
    predictions = {"q1": "Paris", "q2": "whale", "q3": "London", "q4": "", "q5": ""}
    # raw exact q1..q5: 1, 0, 0, 1, 0 (v2 drops the gold "." so "" no longer matches)
    # raw f1: 1, 2/3 (P = 1, R = 1/2), 0, 1, 0
    result = squad_evaluate(examples, predictions)
    assert result == pytest.approx({
        "exact": 40.0, "f1": 100 * (8 / 3) / 5, "total": 5,
        "HasAns_exact": 100 / 3, "HasAns_f1": 100 * (5 / 3) / 3, "HasAns_total": 3,
        "NoAns_exact": 50.0, "NoAns_f1": 50.0, "NoAns_total": 2,
    })

    na_probs = {"q1": 0.1, "q2": 0.6, "q3": 0.8, "q4": 0.3, "q5": 0.9}
    result = squad_evaluate(examples, predictions, na_probs=na_probs, na_prob_thresh=0.5)
    # above 0.5 (q2, q3, q5) counts as "no answer": q2 -> 0, q3 -> 1, q5 -> 0; exact = f1 = (1+0+1+1+0)/5
    assert result["exact"] == pytest.approx(60.0) and result["f1"] == pytest.approx(60.0)
    assert result["NoAns_exact"] == 100.0 and result["HasAns_exact"] == pytest.approx(100 / 3)
    # thresholds, from "all no-answer" (2 points) answering by rising probability:
    # q1 +1 -> 3 (at 0.1), q4 +0, q2 +0 exact / +2/3 f1 (at 0.6), q3 -1 ("London"), q5 +0 / +0
    assert result["best_exact"] == pytest.approx(60.0) and result["best_exact_thresh"] == 0.1
    assert result["best_f1"] == pytest.approx(100 * (3 + 2 / 3) / 5) and result["best_f1_thresh"] == 0.6

    with pytest.raises(ValueError, match="no prediction"):
        squad_evaluate(examples, {"q1": "Paris"})


def test_gold_answers_as_predictions_score_100_on_real_files(squad_data):
    dev = read_squad(squad_data / "dev-v1.1.json")
    first_golds = {ex["id"]: ex["answers"]["text"][0] for ex in dev.examples}
    assert squad_evaluate(dev, first_golds) == {"exact": 100.0, "f1": 100.0, "total": 10570}

    dev2 = json.loads((squad_data / "dev-v2.0.cs224n-subset.json").read_text())  # the raw JSON is accepted too
    golds_or_empty = {qa["id"]: qa["answers"][0]["text"] if qa["answers"] else ""
                      for article in dev2["data"] for paragraph in article["paragraphs"] for qa in paragraph["qas"]}
    result = squad_evaluate(dev2, golds_or_empty)
    assert result["exact"] == 100.0 and result["f1"] == 100.0
    assert (result["HasAns_total"], result["NoAns_total"]) == (2910, 3168)

    wrong = {qid: "" if text else "something" for qid, text in golds_or_empty.items()}
    result = squad_evaluate(dev2, wrong)
    assert result["exact"] == 0.0 and result["f1"] == 0.0


# ----------------------------------------------------------------------------- features

MAX_SEQ_LENGTH, DOC_STRIDE = 128, 32


def _squashed(text):
    """Text as the uncased WordPiece tokenizer sees it (lower case, no accents), without
    whitespace: decoding puts spaces around punctuation ('1,000' comes back as '1, 000')."""
    text = "".join(ch for ch in unicodedata.normalize("NFD", text.lower()) if unicodedata.category(ch) != "Mn")
    return "".join(text.split())


@pytest.fixture(scope="module")
def answer_examples(squad_data):
    """Real questions with long contexts: answerable dev-v1.1 ones and a mix from the v2 train file."""
    dev = read_squad(squad_data / "dev-v1.1.json").examples[:150]
    train = read_squad(squad_data / "train-v2.0.first11articles.json").examples
    impossible = [ex for ex in train if ex["is_impossible"]][:40]
    return dev + train[:60] + impossible


def test_train_features_point_at_the_gold_answer(tokenizer, answer_examples):
    features = prepare_train_features(answer_examples, tokenizer, MAX_SEQ_LENGTH, DOC_STRIDE)
    assert len(features["input_ids"]) > len(answer_examples)  # long contexts were split into windows
    lengths = [len(ids) for ids in features["input_ids"]]
    assert max(lengths) == MAX_SEQ_LENGTH and min(lengths) < MAX_SEQ_LENGTH  # unpadded: the collator pads

    labelled, exact_spans = set(), 0
    for ids, start, end, example in zip(features["input_ids"], features["start_positions"],
                                        features["end_positions"], _example_of_window(answer_examples, tokenizer)):
        if start == CLS_INDEX:
            assert end == CLS_INDEX
            continue
        assert not example["is_impossible"]
        gold = _squashed(example["answers"]["text"][0])
        span = _squashed(tokenizer.decode(ids[start:end + 1]))
        # the span holds the answer, and is the smallest token span that does
        assert gold in span
        assert gold not in _squashed(tokenizer.decode(ids[start + 1:end + 1]))
        assert gold not in _squashed(tokenizer.decode(ids[start:end]))
        exact_spans += span == gold
        labelled.add(example["id"])

    answerable = {ex["id"] for ex in answer_examples if not ex["is_impossible"]}
    assert labelled == answerable  # every answer fits in some window with this stride
    assert exact_spans / len(labelled) > 0.9  # the rest start or end inside a word ("1990" in "1990s")


def _example_of_window(examples, tokenizer):
    ids = prepare_validation_features(examples, tokenizer, MAX_SEQ_LENGTH, DOC_STRIDE)["example_id"]
    by_id = {ex["id"]: ex for ex in examples}
    return [by_id[i] for i in ids]


def test_datasets_map_gives_the_same_features(tokenizer, answer_examples):
    import datasets

    table = datasets.Dataset.from_list(answer_examples[:40])
    mapped = table.map(prepare_train_features, batched=True, batch_size=16, remove_columns=table.column_names,
                       fn_kwargs={"tokenizer": tokenizer, "max_seq_length": MAX_SEQ_LENGTH, "doc_stride": DOC_STRIDE})
    direct = prepare_train_features(answer_examples[:40], tokenizer, MAX_SEQ_LENGTH, DOC_STRIDE)
    assert mapped.to_dict() == direct


@pytest.mark.parametrize("version_2", [False, True])
def test_one_hot_logits_at_the_gold_span_recover_the_answers(tokenizer, answer_examples, version_2):
    import datasets

    examples = answer_examples if version_2 else [ex for ex in answer_examples if not ex["is_impossible"]]
    train = prepare_train_features(examples, tokenizer, MAX_SEQ_LENGTH, DOC_STRIDE)
    table = datasets.Dataset.from_list(examples)
    features = table.map(prepare_validation_features, batched=True, remove_columns=table.column_names,
                         fn_kwargs={"tokenizer": tokenizer, "max_seq_length": MAX_SEQ_LENGTH, "doc_stride": DOC_STRIDE})
    assert list(features["input_ids"]) == train["input_ids"]  # the same windows, in the same order

    start_logits = np.zeros((features.num_rows, MAX_SEQ_LENGTH))
    end_logits = np.zeros((features.num_rows, MAX_SEQ_LENGTH))
    rows = np.arange(features.num_rows)
    start_logits[rows, train["start_positions"]] = 10.0  # windows without the answer: 10 at [CLS]
    end_logits[rows, train["end_positions"]] = 10.0
    for row, ids in enumerate(train["input_ids"]):  # a batch padded past a window scores no position of it
        start_logits[row, len(ids):] = end_logits[row, len(ids):] = 50.0
    predictions, null_odds, nbest = postprocess_predictions(
        table, features, start_logits, end_logits, version_2_with_negative=version_2)

    assert set(predictions) == {ex["id"] for ex in examples}
    assert all(nbest[qid][0]["text"] == predictions[qid] for qid in predictions)
    assert all(sum(c["probability"] for c in nbest[qid]) == pytest.approx(1.0) for qid in predictions)
    aligned = [ex for ex in examples if ex["is_impossible"] or _token_aligned(ex, tokenizer)]
    assert len(aligned) > 0.9 * len(examples)
    result = squad_evaluate(aligned, predictions, version_2_with_negative=version_2)
    assert result["exact"] == 100.0
    for ex in examples:  # answers that end inside a word come back with the whole word
        gold = ex["answers"]["text"][0] if ex["answers"]["text"] else ""
        assert gold in predictions[ex["id"]]
    if version_2:
        assert result["NoAns_total"] == 40 and result["NoAns_exact"] == 100.0
        assert all(null_odds[ex["id"]] > 0 for ex in examples if ex["is_impossible"])
        assert all(null_odds[ex["id"]] < 0 for ex in examples if not ex["is_impossible"])
    else:
        assert null_odds == {}


def _token_aligned(example, tokenizer):
    """True when the gold answer starts and ends on token boundaries: cutting the context there
    leaves the tokens before the cut as they are in the whole context."""
    context, text = example["context"], example["answers"]["text"][0]
    start = example["answers"]["answer_start"][0]

    def tokens(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    whole = tokens(context)
    return all(whole[:len(cut)] == cut for cut in (tokens(context[:start]), tokens(context[:start + len(text)])))


def test_long_questions_are_cut_to_max_query_length(tokenizer):
    question = "   " + " ".join(["why"] * 100) + "?"
    examples = {"id": ["q"], "question": [question], "context": ["Because it was raining all day."],
                "answers": [{"text": ["raining"], "answer_start": [14]}]}
    features = prepare_train_features(examples, tokenizer, max_seq_length=64, doc_stride=8, max_query_length=20)
    ids = features["input_ids"][0]
    why = tokenizer.convert_tokens_to_ids("why")
    assert ids[:22] == [tokenizer.cls_token_id] + [why] * 20 + [tokenizer.sep_token_id]
    assert tokenizer.decode(ids[features["start_positions"][0]:features["end_positions"][0] + 1]) == "raining"
