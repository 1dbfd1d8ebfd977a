import json
import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score

from litebert.tasks.race import (
    build_choice_inputs,
    load_race_from_hub,
    prepare_multiple_choice_features,
    race_accuracy,
    read_race,
)

from conftest import write_hub_dataset

RACE = Path(__file__).resolve().parents[2] / "shared" / "data" / "race"


@pytest.fixture(scope="module")
def tokenizer(wordpiece_tokenizer):
    return wordpiece_tokenizer


@pytest.fixture(scope="module")
def dev():
    return read_race(RACE, "dev")


# ----------------------------------------------------------------------------- reading


def hub_rows(files):
    """One row per question, as the Hub's ehovy/race stores RACE, straight from the original JSON files."""
    rows = []
    for path in files:
        passage = json.loads(path.read_text(encoding="utf-8"))
        for question, options, answer in zip(passage["questions"], passage["options"], passage["answers"]):
            rows.append({"example_id": passage["id"], "article": passage["article"], "answer": answer,
                         "question": question, "options": options})
    return rows


def test_hub_dataset_layout_gives_the_same_examples(tmp_path):
    """The first passages of each level of the real dev set, laid out as ehovy/race (configs middle/high, split
    "validation"), read back equal to read_race on a folder holding the same passages."""
    subset, configs = tmp_path / "race", {}
    for level in ("middle", "high"):
        files = sorted((RACE / "dev" / level).glob("*.txt"), key=lambda p: int(p.stem))[:6]
        (subset / "dev" / level).mkdir(parents=True)
        for path in files:
            (subset / "dev" / level / path.name).write_bytes(path.read_bytes())
        configs[level] = {"validation": hub_rows(files)}
    folder = write_hub_dataset(tmp_path / "hub", configs)

    expected = read_race(subset, "dev")
    assert load_race_from_hub(str(folder), "dev", cache_dir=str(tmp_path / "cache")) == expected
    assert load_race_from_hub(str(folder), "dev", levels=["high"], cache_dir=str(tmp_path / "cache")) == [
        ex for ex in expected if ex["level"] == "high"]
    with pytest.raises(ValueError, match="split 'validation'"):
        load_race_from_hub(str(folder), "validation")


def test_hub_rows_with_a_bad_answer_are_named(tmp_path):
    rows = hub_rows(sorted((RACE / "dev" / "middle").glob("*.txt"), key=lambda p: int(p.stem))[:1])
    rows[1]["answer"] = "E"
    folder = write_hub_dataset(tmp_path / "hub", {"middle": {"validation": rows}})
    with pytest.raises(ValueError, match=r"middle\[validation\], row 1: .*answer 'E'"):
        load_race_from_hub(str(folder), "dev", levels=["middle"], cache_dir=str(tmp_path / "cache"))


def test_real_splits_match_published_counts(dev):
    assert len(dev) == 4887
    assert sum(ex["level"] == "middle" for ex in dev) == 1436
    assert sum(ex["level"] == "high" for ex in dev) == 3451
    assert len({ex["example_id"].rsplit("-", 1)[0] for ex in dev}) == 1389  # passages
    assert len({ex["example_id"] for ex in dev}) == 4887

    test = read_race(RACE, "test")
    assert len(test) == 4934 and sum(ex["level"] == "middle" for ex in test) == 1436
    assert len(read_race(RACE, "dev", levels=("middle",))) == 1436


def test_labels_match_the_answer_letters_in_the_files(dev):
    expected = {}
    for path in (RACE / "dev").glob("*/*.txt"):
        passage = json.loads(path.read_text(encoding="utf-8"))
        for i, (question, options, letter) in enumerate(zip(passage["questions"], passage["options"],
                                                            passage["answers"])):
            expected[(passage["article"], question, tuple(options))] = {"A": 0, "B": 1, "C": 2, "D": 3}[letter]
    assert len(expected) > 4800  # a few passages repeat a question verbatim
    assert all(expected[(ex["article"], ex["question"], tuple(ex["options"]))] == ex["label"] for ex in dev)
    assert {ex["label"] for ex in dev} == {0, 1, 2, 3}


def _race_tree(tmp_path, passage, name="7.txt"):
    folder = tmp_path / "dev" / "high"
    folder.mkdir(parents=True, exist_ok=True)
    (tmp_path / "dev" / "middle").mkdir(exist_ok=True)
    (folder / name).write_text(passage if isinstance(passage, str) else json.dumps(passage), encoding="utf-8")
    return tmp_path


GOOD = {"article": "Tom has a cat.", "questions": ["Tom has a _ .", "Who has a cat?"],
        "options": [["cat", "dog", "cow", "hen"], ["Tom", "Ann", "Bob", "Sue"]], "answers": ["A", "A"],
        "id": "high7.txt"}


def test_small_tree_reads_in_numeric_file_order(tmp_path):
    root = _race_tree(tmp_path, GOOD)
    _race_tree(tmp_path, {**GOOD, "answers": ["B", "D"], "id": "high10.txt"}, name="10.txt")
    (tmp_path / "dev" / "middle" / "2.txt").write_text(json.dumps({**GOOD, "id": "middle2.txt"}))
    examples = read_race(root, "dev")
    assert [ex["example_id"] for ex in examples] == ["middle2-0", "middle2-1", "high7-0", "high7-1",
                                                     "high10-0", "high10-1"]
    assert [ex["label"] for ex in examples] == [0, 0, 0, 0, 1, 3]
    assert examples[2] == {"example_id": "high7-0", "level": "high", "article": "Tom has a cat.",
                           "question": "Tom has a _ .", "options": ["cat", "dog", "cow", "hen"], "label": 0}


@pytest.mark.parametrize("passage, expected", [
    ('{"article": "x",\n "questions": [}', r"7\.txt, line 2: invalid JSON"),
    ({**GOOD, "options": [["cat", "dog", "cow"], GOOD["options"][1]]},
     r"7\.txt, question 0: expected 4 options, found 3"),
    ({**GOOD, "answers": ["A", "E"]}, r"7\.txt, question 1: expected an answer letter A-D, found 'E'"),
    ({key: value for key, value in GOOD.items() if key != "options"}, r"7\.txt: missing key\(s\) options"),
    ({**GOOD, "answers": ["A"]}, r"7\.txt: expected one options list and one answer per question"),
])
def test_malformed_passages_name_the_file(tmp_path, passage, expected):
    with pytest.raises(ValueError, match=expected):
        read_race(_race_tree(tmp_path, passage), "dev", levels=("high",))


def test_missing_folders_say_what_layout_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"dev/middle.*dev/high.*\{middle,high\}/\*\.txt"):
        read_race(tmp_path, "dev")
    (tmp_path / "dev" / "middle").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"no RACE passages \(\*\.txt\) in .*dev/middle"):
        read_race(tmp_path, "dev", levels=("middle",))
    with pytest.raises(ValueError, match="unknown RACE level"):
        read_race(tmp_path, "dev", levels=("college",))


# ----------------------------------------------------------------------------- inputs


def test_choice_inputs_fill_the_blank_or_follow_the_question():
    assert build_choice_inputs("John Denver is a great  _  singer.", "American") == \
        "John Denver is a great  American  singer."
    assert build_choice_inputs("He was born in ____ and died in _ .", "1943") == \
        "He was born in 1943 and died in 1943 ."
    assert build_choice_inputs("The path is _ .", r"C:\new\1") == r"The path is C:\new\1 ."  # no regex escapes
    assert build_choice_inputs("Which sentence is right?", "Music is old.") == "Which sentence is right? Music is old."


def test_features_truncate_only_the_article(tokenizer, dev):
    max_seq_length = 96
    examples = dev[:60]
    features = prepare_multiple_choice_features(examples, tokenizer, max_seq_length)
    assert features["labels"] == [ex["label"] for ex in examples]
    for name in ("input_ids", "attention_mask", "token_type_ids"):  # [60, 4, length of each pair], unpadded
        assert [len(choices) for choices in features[name]] == [4] * 60
        assert [len(ids) for choices in features[name] for ids in choices] == \
            [len(ids) for choices in features["input_ids"] for ids in choices]
    assert all(set(mask) == {1} for masks in features["attention_mask"] for mask in masks)
    assert max(len(ids) for choices in features["input_ids"] for ids in choices) == max_seq_length

    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    truncated = 0
    for example, choices, masks in zip(examples, features["input_ids"], features["attention_mask"]):
        article = tokenizer(example["article"], add_special_tokens=False)["input_ids"]
        for option, ids, mask in zip(example["options"], choices, masks):
            text = build_choice_inputs(example["question"], option)
            choice = tokenizer(text, add_special_tokens=False)["input_ids"]
            used = ids[:sum(mask)]  # without padding
            first_sep = used.index(sep)
            kept = used[1:first_sep]
            assert used[0] == cls and kept == article[:len(kept)]  # the beginning of the article
            assert used[first_sep + 1:] == choice + [sep]  # then the whole question + option
            assert tokenizer.decode(used[first_sep + 1:-1]) == tokenizer.decode(choice)
            if len(article) + len(choice) + 3 > max_seq_length:
                assert len(used) == max_seq_length and len(kept) < len(article)
                truncated += 1
            else:
                assert kept == article
    assert truncated > 200  # most of the 240 sequences needed cutting


def test_a_long_question_and_option_stay_whole_beside_a_long_article(tokenizer):
    example = {"article": "Once upon a time there lived a very old king in a castle by the sea. " * 5,
               "question": "According to the passage, where did the very old king live for most of his _ ?",
               "options": ["life", "reign", "childhood in the mountains far away", "youth"], "label": 1}
    features = prepare_multiple_choice_features([example], tokenizer, max_seq_length=30)
    for option, ids in zip(example["options"], features["input_ids"][0]):
        choice = tokenizer(build_choice_inputs(example["question"], option), add_special_tokens=False)["input_ids"]
        assert len(choice) > 15  # longer than the article part that is left
        assert ids[-len(choice) - 1:] == choice + [tokenizer.sep_token_id]


def test_features_from_a_dataset_map_and_too_long_choices(tokenizer):
    import datasets

    examples = [{"article": "Short story about a cat called Tom.", "question": "The cat is called _ .",
                 "options": ["Tom", "Ann", "Bob", "Sue"], "label": 0},
                {"article": "Another one.", "question": "Which is true?", "options": ["a", "b", "c", "d"], "label": 3}]
    table = datasets.Dataset.from_list(examples)
    mapped = table.map(prepare_multiple_choice_features, batched=True, remove_columns=table.column_names,
                       fn_kwargs={"tokenizer": tokenizer, "max_seq_length": 32})
    assert mapped.to_dict() == prepare_multiple_choice_features(examples, tokenizer, 32)
    assert tokenizer.decode(mapped[0]["input_ids"][0], skip_special_tokens=True) == \
        "short story about a cat called tom. the cat is called tom."
    assert mapped[0]["attention_mask"][0].count(1) == len(tokenizer(
        "Short story about a cat called Tom.", "The cat is called Tom .")["input_ids"])

    long_option = {**examples[1], "options": ["a", "b", "c", "word " * 40]}
    with pytest.raises(ValueError, match="raise max_seq_length"):
        prepare_multiple_choice_features([long_option], tokenizer, 32)


# ----------------------------------------------------------------------------- accuracy


def test_accuracy_overall_and_per_level():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=400)
    levels = np.where(rng.random(400) < 0.3, "middle", "high")
    logits = rng.normal(size=(400, 4))
    logits[np.arange(400), labels] += 0.8  # better than chance
    predictions = logits.argmax(1)

    result = race_accuracy(logits, labels, levels)
    middle = levels == "middle"
    assert result["accuracy"] == pytest.approx(accuracy_score(labels, predictions))
    assert result["accuracy_middle"] == pytest.approx(accuracy_score(labels[middle], predictions[middle]))
    assert result["accuracy_high"] == pytest.approx(accuracy_score(labels[~middle], predictions[~middle]))
    assert (result["count"], result["count_middle"], result["count_high"]) == (400, middle.sum(), (~middle).sum())

    only_high = race_accuracy([1, 2], [1, 3], ["high", "high"])
    assert only_high["accuracy_high"] == 0.5 and math.isnan(only_high["accuracy_middle"])
