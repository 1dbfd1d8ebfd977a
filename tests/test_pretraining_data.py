import itertools
import json
import math
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset, IterableDataset
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast, TrainerControl, TrainerState, TrainingArguments

from litebert.pretraining_data import (
    DataCollatorForNgramMLM,
    SentenceOrderEpochCallback,
    build_sop_chunks,
    build_sop_dataset,
    heading_level,
    load_documents,
    read_documents,
)
from litebert.tasks.io import DataFormatError
from litebert.tokenization import train_tokenizer

WIKITEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "wikitext-2"

MAX_SEQ_LENGTH = 128
TITLE = re.compile(r" = [^=](.*[^=])? = ")  # " = Title = ", but not " = = Section = = "
HEADING = re.compile(r" (= )+.+( =)+ ")  # a title or a section heading of any level


@pytest.fixture(scope="module")
def minilm(wordpiece_tokenizer):
    return wordpiece_tokenizer


@pytest.fixture(scope="module")
def unigram():
    with open(WIKITEXT / "train.txt", encoding="utf-8") as f:
        return train_tokenizer(itertools.islice(f, 3000), vocab_size=2000, show_progress=False)


@pytest.fixture(scope="module")
def wiki_documents():
    return list(read_documents([WIKITEXT / "valid.txt", WIKITEXT / "test.txt"]))


@pytest.fixture(scope="module")
def wiki_sop(minilm, wiki_documents):
    documents = Dataset.from_dict({"lines": wiki_documents})
    return examples_of(build_sop_dataset(documents, minilm, max_seq_length=MAX_SEQ_LENGTH, seed=0))


def examples_of(dataset) -> list[dict]:
    return [dataset[i] for i in range(len(dataset))]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------
# reading documents


def test_heading_levels():
    assert heading_level(" = Valkyria Chronicles III = \n") == 1
    assert heading_level(" = = Gameplay = = \n") == 2
    assert heading_level(" = = = Reception = = = \n") == 3
    assert heading_level(" The score was 2 = 2 . \n") == 0
    assert heading_level(" \n") == 0
    assert heading_level(" = = = \n") == 0


def test_wikitext_titles_start_documents_and_sections_do_not(tmp_path):
    text = " \n = Alpha = \n \n First line .\n \n = = Section = = \n \n Second line .\n \n = Beta = \n Third line .\n"
    path = write(tmp_path / "wiki.txt", text)
    assert list(read_documents(path)) == [["First line .", "Second line ."], ["Third line ."]]


def test_blank_lines_separate_documents(tmp_path):
    path = write(tmp_path / "plain.txt", "One .\nTwo .\n\n\nThree .\n  \nFour .\n")
    assert list(read_documents([path])) == [["One .", "Two ."], ["Three ."], ["Four ."]]


def test_real_wikitext_documents_match_titles():
    documents = list(read_documents(WIKITEXT / "valid.txt"))
    with open(WIKITEXT / "valid.txt", encoding="utf-8") as f:
        raw = [line.rstrip("\n") for line in f]
    titles = [line for line in raw if TITLE.fullmatch(line)]
    body = [line.strip() for line in raw if line.strip() and not HEADING.fullmatch(line)]
    assert len(titles) > 50
    assert len(documents) == len(titles)
    assert [line for document in documents for line in document] == body
    assert documents[0][0].startswith("Homarus gammarus , known as the European lobster")


def test_missing_file_is_named(tmp_path):
    present = write(tmp_path / "present.txt", "Some text .\n")
    with pytest.raises(FileNotFoundError, match="absent_corpus.txt"):
        read_documents([present, tmp_path / "absent_corpus.txt"])
    with pytest.raises(FileNotFoundError, match="absent_corpus.txt"):
        load_documents(train_files=[present, tmp_path / "absent_corpus.txt"])


def test_empty_corpus_names_the_files(tmp_path):
    blank = write(tmp_path / "blank.txt", " \n \n")
    headings = write(tmp_path / "headings_only.txt", " = Title = \n = = Section = = \n")
    with pytest.raises(ValueError, match="blank.txt.*headings_only.txt"):
        read_documents([blank, headings])
    with pytest.raises(ValueError, match="empty corpus"):
        load_documents(train_files=[blank])
    # One empty file among others is skipped.
    text = write(tmp_path / "text.txt", "Some text .\n")
    assert list(read_documents([blank, text])) == [["Some text ."]]


def test_load_documents_from_files_plain_and_streaming(tmp_path):
    paths = [WIKITEXT / "valid.txt", write(tmp_path / "extra.txt", "Extra one .\nExtra two .\n")]
    expected = list(read_documents(paths))
    documents = load_documents(train_files=paths)
    assert isinstance(documents, Dataset)
    assert documents.column_names == ["lines"]
    assert documents["lines"] == expected
    streamed = load_documents(train_files=paths, streaming=True)
    assert isinstance(streamed, IterableDataset)
    assert [row["lines"] for row in streamed] == expected


def test_load_documents_reads_an_edited_file_again(tmp_path):
    path = write(tmp_path / "corpus.txt", "Old text .\n")
    assert load_documents(train_files=path)["lines"] == [["Old text ."]]
    write(path, "New text .\nMore .\n")
    assert load_documents(train_files=path)["lines"] == [["New text .", "More ."]]


def test_load_documents_from_a_datasets_text_column(tmp_path):
    wiki_folder = tmp_path / "wiki"
    wiki_folder.mkdir()
    write(wiki_folder / "train.txt", " \n = Alpha = \n \n First .\n = = Sub = = \n Second .\n = Beta = \n Third .\n")
    assert load_documents(dataset_name=str(wiki_folder))["lines"] == [["First .", "Second ."], ["Third ."]]

    rows_folder = tmp_path / "rows"
    rows_folder.mkdir()
    rows = [{"body": "A one .\nA two ."}, {"body": ""}, {"body": "B one ."}]
    write(rows_folder / "train.jsonl", "\n".join(json.dumps(row) for row in rows))
    expected = [["A one .", "A two ."], ["B one ."]]
    assert load_documents(dataset_name=str(rows_folder), text_column="body")["lines"] == expected
    streamed = load_documents(dataset_name=str(rows_folder), text_column="body", streaming=True)
    assert [row["lines"] for row in streamed] == expected
    with pytest.raises(ValueError, match="'text'.*body"):
        load_documents(dataset_name=str(rows_folder))


def test_load_documents_errors():
    with pytest.raises(ValueError, match="exactly one"):
        load_documents()
    with pytest.raises(ValueError, match="exactly one"):
        load_documents(train_files=[WIKITEXT / "valid.txt"], dataset_name="wikitext")
    with pytest.raises(OSError, match="litebert-test/no-such-dataset.*train_files"):
        load_documents(dataset_name="litebert-test/no-such-dataset")


def test_a_corpus_file_that_is_not_utf8_is_named_with_its_first_bad_byte(tmp_path):
    documents = "Good line .\n\n".encode() * 2000  # the bad byte lies far beyond the first read buffer
    late = tmp_path / "latin1_late.txt"
    late.write_bytes(documents + "Café crème .\n".encode("latin-1"))
    early = tmp_path / "latin1_early.txt"  # in the first document, which the empty-corpus check reads
    early.write_bytes("Déjà vu .\n".encode("latin-1") + documents)
    for path in (late, early):
        content = path.read_bytes()
        offset = content.index(b"\xe9")
        line = content[:offset].count(b"\n") + 1
        expected = rf"{path.name}, line {line}, byte {offset}: not UTF-8 text \(byte 0xe9"
        with pytest.raises(DataFormatError, match=expected):
            list(read_documents([path]))
        with pytest.raises(DataFormatError, match=expected):
            load_documents(train_files=[path])
        with pytest.raises(DataFormatError, match=expected):
            list(load_documents(train_files=[path], streaming=True))


def test_a_dataset_without_text_is_an_empty_corpus(tmp_path):
    folder = tmp_path / "blank_rows"
    folder.mkdir()
    write(folder / "train.jsonl", "\n".join(json.dumps({"body": text}) for text in ("", "  ", "\n \n")))
    for streaming in (False, True):
        with pytest.raises(ValueError, match=rf"empty corpus: dataset '{re.escape(str(folder))}'.*column 'body'"):
            load_documents(dataset_name=str(folder), text_column="body", streaming=streaming)


# ----------------------------------------------------------------------------
# sentence-order pairs


def segments(example: dict) -> tuple[list[int], list[int]]:
    """Split [CLS] A [SEP] B [SEP] using token_type_ids, not the separators."""
    ids, types = example["input_ids"], example["token_type_ids"]
    a_end = types.index(1)  # first B position
    return ids[1 : a_end - 1], ids[a_end:-1]


def as_text(ids) -> str:
    return " " + " ".join(map(str, ids)) + " "


class SourceText:
    """The documents as token ids, each tokenized line by line on its own;
    `ids in source` tells whether ids occur contiguously inside one document."""

    KEY = 4

    def __init__(self, tokenizer, documents):
        tokenized = (tokenizer(document, add_special_tokens=False)["input_ids"] for document in documents)
        self.streams = [list(itertools.chain.from_iterable(lines)) for lines in tokenized]
        self.text = "\n".join(as_text(stream) for stream in self.streams)  # one line per document
        self.where = {}  # KEY ids -> every (document, position) they occur at
        for number, stream in enumerate(self.streams):
            for position in range(len(stream) - self.KEY + 1):
                self.where.setdefault(tuple(stream[position : position + self.KEY]), []).append((number, position))

    def __contains__(self, ids: list[int]) -> bool:
        if len(ids) < self.KEY:  # rare: search the whole text
            return as_text(ids) in self.text
        # Anchor on the rarest KEY ids of the needle ("<unk>" alone is 4 common WordPiece ids).
        offsets = range(len(ids) - self.KEY + 1)
        offset = min(offsets, key=lambda i: len(self.where.get(tuple(ids[i : i + self.KEY]), [])))
        starts = self.where.get(tuple(ids[offset : offset + self.KEY]), [])
        return any(
            self.streams[number][position - offset : position - offset + len(ids)] == ids
            for number, position in starts
            if position >= offset
        )


def test_sop_layout(wiki_sop, minilm):
    assert len(wiki_sop) > 3000
    for example in wiki_sop:
        ids = example["input_ids"]
        segment_a, segment_b = segments(example)
        n_a, n_b = len(segment_a), len(segment_b)
        assert n_a > 0 and n_b > 0
        assert len(ids) == n_a + n_b + 3 <= MAX_SEQ_LENGTH
        assert ids[0] == minilm.cls_token_id
        assert ids[n_a + 1] == ids[-1] == minilm.sep_token_id
        assert example["token_type_ids"] == [0] * (n_a + 2) + [1] * (n_b + 1)
        assert example["attention_mask"] == [1] * len(ids)
        assert example["special_tokens_mask"] == [1] + [0] * n_a + [1] + [0] * n_b + [1]
        assert minilm.sep_token_id not in segment_a + segment_b
        # chunks and segments are cut between words (unless the chunk is one word): both start a word
        pieces = minilm.convert_ids_to_tokens(chunk_and_cut(example)[0])
        if not all(piece.startswith("##") for piece in pieces[1:]):
            starts = minilm.convert_ids_to_tokens([segment_a[0], segment_b[0]])
            assert not any(token.startswith("##") for token in starts)
    lengths = np.array([len(example["input_ids"]) for example in wiki_sop])
    # chunks are filled to the target length, up to the last whole word
    assert np.mean(lengths == MAX_SEQ_LENGTH) > 0.7 and np.mean(lengths >= MAX_SEQ_LENGTH - 5) > 0.85
    assert 0.03 < np.mean(lengths < MAX_SEQ_LENGTH // 2) < 0.1  # short_seq_prob=0.1 gives some short pairs


def test_sop_labels_are_balanced(wiki_sop):
    labels = np.array([example["sentence_order_label"] for example in wiki_sop])
    assert set(labels) == {0, 1}
    assert abs(labels.mean() - 0.5) < 0.03


def test_sop_order_matches_source_text(wiki_sop, minilm, wiki_documents):
    source = SourceText(minilm, wiki_documents)
    presented_found = 0
    for example in wiki_sop:
        segment_a, segment_b = segments(example)
        original_order = segment_a + segment_b if example["sentence_order_label"] == 0 else segment_b + segment_a
        assert original_order in source
        presented_found += example["sentence_order_label"] == 1 and segment_a + segment_b in source
    # The check above tells the two orders apart: swapped pairs are not source text as presented.
    assert presented_found < 0.02 * len(wiki_sop)


def test_without_sentence_order_pairs_keep_the_source_order(wiki_sop, minilm, wiki_documents):
    """sentence_order=False (pretraining without SOP): the same cuts, never swapped, and no label."""
    documents = Dataset.from_dict({"lines": wiki_documents})
    unswapped = examples_of(build_sop_dataset(documents, minilm, max_seq_length=MAX_SEQ_LENGTH, seed=0,
                                              sentence_order=False))
    source = SourceText(minilm, wiki_documents)
    assert len(unswapped) == len(wiki_sop)
    for example, with_order in zip(unswapped, wiki_sop):
        assert "sentence_order_label" not in example
        segment_a, segment_b = segments(example)
        assert segment_a + segment_b in source
        expected = segments(with_order) if with_order["sentence_order_label"] == 0 else segments(with_order)[::-1]
        assert (segment_a, segment_b) == tuple(expected)


def single_token_words(tokenizer, count: int) -> list[str]:
    words = (w for w in sorted(tokenizer.get_vocab()) if w.isalpha() and w.islower() and len(w) >= 4)
    return list(itertools.islice((w for w in words if tokenizer.tokenize(w) == [w]), count))


def test_segments_never_cross_documents(minilm):
    rng = np.random.default_rng(0)
    words = single_token_words(minilm, 40 * 30)
    vocabularies = [words[i * 30 : (i + 1) * 30] for i in range(40)]
    documents = [
        [" ".join(rng.choice(vocabulary, size=rng.integers(1, 25))) for _ in range(rng.integers(1, 12))]
        for vocabulary in vocabularies
    ]
    documents[7] = [" ".join(rng.choice(vocabularies[7], size=150))]  # one line longer than a sequence
    ids_by_document = [set(minilm.convert_tokens_to_ids(vocabulary)) for vocabulary in vocabularies]
    source = SourceText(minilm, documents)

    sop = build_sop_dataset(Dataset.from_dict({"lines": documents}), minilm, max_seq_length=48, seed=3)
    examples = examples_of(sop)
    tokens_used = np.zeros(len(documents), dtype=int)
    for example in examples:
        segment_a, segment_b = segments(example)
        owner = [i for i, ids in enumerate(ids_by_document) if set(segment_a + segment_b) <= ids]
        assert len(owner) == 1
        assert segment_a and segment_b and len(example["input_ids"]) <= 48
        ordered = segment_a + segment_b if example["sentence_order_label"] == 0 else segment_b + segment_a
        assert ordered in source
        tokens_used[owner[0]] += len(segment_a) + len(segment_b)
    # No text is dropped, but a lone last token that cannot make a pair.
    tokens_in = np.array([len(" ".join(document).split()) for document in documents])
    assert ((tokens_used == tokens_in) | (tokens_used == tokens_in - 1)).all()
    assert (tokens_used == tokens_in).mean() > 0.8
    # The 150-token line gives at least ceil(150 / 45) pairs of at most 48 - 3 tokens.
    assert sum(set(segments(e)[0]) <= ids_by_document[7] for e in examples) >= 4


def test_sop_is_deterministic_and_independent_of_processes_and_streaming(minilm, wiki_documents):
    documents = Dataset.from_dict({"lines": wiki_documents[:30]})
    first = examples_of(build_sop_dataset(documents, minilm, max_seq_length=64, seed=5))
    assert examples_of(build_sop_dataset(documents, minilm, max_seq_length=64, seed=5, num_proc=2)) == first
    streamed = build_sop_dataset(documents.to_iterable_dataset(), minilm, max_seq_length=64, seed=5)
    assert list(streamed) == first
    limited = build_sop_dataset(documents.to_iterable_dataset(), minilm, max_seq_length=64, seed=5, max_examples=7)
    assert list(limited) == first[:7]
    other_seed = examples_of(build_sop_dataset(documents, minilm, max_seq_length=64, seed=6))
    assert other_seed != first


def chunk_and_cut(example: dict) -> tuple[list[int], int]:
    """The chunk an example was drawn from (A + B put back in source order by its label) and where A ends in it."""
    segment_a, segment_b = segments(example)
    if example["sentence_order_label"] == 1:
        return segment_b + segment_a, len(segment_b)
    return segment_a + segment_b, len(segment_a)


def test_sop_pairs_are_drawn_anew_every_epoch(minilm, wiki_documents):
    documents = Dataset.from_dict({"lines": wiki_documents[:40]})
    chunks = build_sop_chunks(documents, minilm, max_seq_length=64, seed=3)
    pairs = build_sop_dataset(documents, minilm, max_seq_length=64, seed=3)
    draws = []  # per epoch: (cut, label) of every chunk
    for epoch in range(3):
        pairs.set_epoch(epoch)
        examples = examples_of(pairs)
        assert len(examples) == len(chunks) > 300
        draws.append([])
        for example, chunk in zip(examples, chunks):
            source, cut = chunk_and_cut(example)
            assert source == chunk["input_ids"]  # A + B is the chunk; swapped exactly when the label is 1
            if chunk["line_breaks"]:
                assert cut in chunk["line_breaks"]
            else:  # within one line: cut at a word start
                assert not minilm.convert_ids_to_tokens(source[cut]).startswith("##")
            draws[-1].append((cut, example["sentence_order_label"]))
        assert abs(np.mean([label for _, label in draws[-1]]) - 0.5) < 0.1
    for earlier, later in itertools.combinations(draws, 2):
        assert np.mean([a != b for a, b in zip(earlier, later)]) > 0.6  # most chunks get a new cut or order
    # The same (seed, epoch) gives the same pairs: a dataset built again, read in another order.
    again = build_sop_dataset(documents, minilm, max_seq_length=64, seed=3)
    again.set_epoch(1)
    pairs.set_epoch(1)
    assert [again[i] for i in reversed(range(len(again)))] == examples_of(pairs)[::-1]
    assert draws[1] == [(chunk_and_cut(again[i])[1], again[i]["sentence_order_label"]) for i in range(len(again))]


def test_dataloader_workers_draw_the_pairs_of_the_epoch_set_before_they_start(minilm, wiki_documents):
    pairs = build_sop_dataset(Dataset.from_dict({"lines": wiki_documents[:5]}), minilm, max_seq_length=64, seed=3)
    pairs.set_epoch(2)
    loader = torch.utils.data.DataLoader(pairs, batch_size=4, num_workers=2, collate_fn=list)
    assert [example for batch in loader for example in batch] == examples_of(pairs)


class RecordingCollator:
    """Records the examples and the batch of every call."""

    def __init__(self, collator):
        self.collator, self.calls = collator, []

    def __call__(self, examples):
        batch = self.collator(examples)
        self.calls.append((examples, {name: tensor.clone() for name, tensor in batch.items()}))
        return batch


def train_and_record(tokenizer, documents, output_dir, resume_from_checkpoint=None):
    """A tiny ALBERT on the stock Trainer: 2 epochs of 5 steps, a checkpoint after step 7 (in the second epoch)."""
    from transformers import AlbertConfig, AlbertForPreTraining, Trainer

    train_dataset = build_sop_dataset(
        documents, tokenizer, max_seq_length=32, short_seq_prob=0.0, max_position_embeddings=32, seed=1
    )
    assert len(train_dataset) == 40
    config = AlbertConfig(
        vocab_size=len(tokenizer), embedding_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16, max_position_embeddings=32, pad_token_id=tokenizer.pad_token_id,
    )
    args = TrainingArguments(
        output_dir=str(output_dir), num_train_epochs=2, per_device_train_batch_size=8, save_steps=7,
        report_to=[], use_cpu=True, disable_tqdm=True, logging_strategy="no", seed=0,
    )
    collator = RecordingCollator(DataCollatorForNgramMLM(tokenizer))  # masks keyed by --seed and the batch
    trainer = Trainer(
        AlbertForPreTraining(config), args, train_dataset=train_dataset, data_collator=collator,
        callbacks=[SentenceOrderEpochCallback(train_dataset)],
    )
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    return collator.calls


@pytest.fixture
def one_torch_thread():
    """Tiny models train faster on one thread, and much faster than on threads fighting over busy cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_resumed_run_sees_the_batches_of_an_uninterrupted_one(unigram, wiki_documents, tmp_path, one_torch_thread):
    # 40 one-line documents of 12 words: one chunk each
    documents = Dataset.from_dict({"lines": [[" ".join(document[0].split()[:12])] for document in wiki_documents[:40]]})
    uninterrupted = train_and_record(unigram, documents, tmp_path / "uninterrupted")
    assert len(uninterrupted) == 10
    resumed = train_and_record(unigram, documents, tmp_path / "resumed", tmp_path / "uninterrupted" / "checkpoint-7")
    assert len(resumed) == 3
    for (examples, batch), (expected_examples, expected_batch) in zip(resumed, uninterrupted[7:]):
        assert examples == expected_examples
        assert batch.keys() == expected_batch.keys()
        assert all(torch.equal(batch[name], expected_batch[name]) for name in batch)
    # the callback told the dataset the epoch: the second epoch draws its own pairs from the same 40 chunks
    first_epoch, second_epoch = (
        {tuple(chunk): cut for examples, _ in epoch_calls for chunk, cut in map(chunk_and_cut, examples)}
        for epoch_calls in (uninterrupted[:5], uninterrupted[5:])
    )
    assert first_epoch.keys() == second_epoch.keys() and len(first_epoch) == 40
    assert sum(first_epoch[chunk] != second_epoch[chunk] for chunk in first_epoch) > 20


def test_the_epoch_callback_refuses_persistent_workers(tmp_path):
    args = TrainingArguments(
        output_dir=str(tmp_path), dataloader_num_workers=1, dataloader_persistent_workers=True, use_cpu=True,
        report_to=[],
    )
    with pytest.raises(ValueError, match="dataloader_persistent_workers"):
        SentenceOrderEpochCallback().on_train_begin(args, TrainerState(), TrainerControl())


def word_level_tokenizer(words: list[str]) -> PreTrainedTokenizerFast:
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]",
    )


def test_a_very_long_line_costs_no_more_than_the_same_text_in_short_lines():
    """Packing is linear in the length of a line. Slicing the rest of a line off at every chunk was quadratic: a
    10 MB line ran for over 15 minutes, and the single line here took 15 times as long as the same tokens in lines
    of 100 (24.5 s against 1.6 s; now 2.2 s against 1.4 s, on a busy machine)."""
    words = ["alpha", "beta", "gamma", "delta"]
    tokenizer = word_level_tokenizer(words)
    text = [words[i % len(words)] for i in range(300_000)]
    one_line = [" ".join(text)]
    short_lines = [" ".join(text[start : start + 100]) for start in range(0, len(text), 100)]

    def build(lines: list[str]) -> tuple[float, int]:
        start = time.perf_counter()
        examples = build_sop_dataset(Dataset.from_dict({"lines": [lines]}), tokenizer, max_seq_length=8)
        return time.perf_counter() - start, len(examples)

    # interleaved, best of two: a busy machine slows both layouts alike
    (one_line_seconds, one_line_examples), (short_lines_seconds, short_lines_examples) = (
        min(runs) for runs in zip(*[(build(one_line), build(short_lines)) for _ in range(2)])
    )
    assert math.isclose(one_line_examples, short_lines_examples, rel_tol=0.05)  # the same text, about as many chunks
    assert one_line_seconds < 4 * short_lines_seconds


def test_sop_errors(minilm, wiki_documents):
    documents = Dataset.from_dict({"lines": wiki_documents[:2]})
    with pytest.raises(ValueError, match="1024.*512"):
        build_sop_dataset(documents, minilm, max_seq_length=1024, max_position_embeddings=512)
    with pytest.raises(ValueError, match="max_seq_length=4"):
        build_sop_dataset(documents, minilm, max_seq_length=4)
    with pytest.raises(ValueError, match="'lines'"):
        build_sop_dataset(Dataset.from_dict({"text": ["a b c"]}), minilm)
    no_mask = AutoTokenizer.from_pretrained(minilm.name_or_path)
    no_mask.mask_token = None
    with pytest.raises(ValueError, match="mask_token"):
        build_sop_dataset(documents, no_mask)
    with pytest.raises(ValueError, match="mask_token"):
        DataCollatorForNgramMLM(no_mask)


# ----------------------------------------------------------------------------
# n-gram masking


def collate_all(collator, examples, batch_size=32):
    for start in range(0, len(examples), batch_size):
        yield examples[start : start + batch_size], collator(examples[start : start + batch_size])


def padded(examples, name, length, value):
    return np.array([example[name] + [value] * (length - len(example[name])) for example in examples])


@pytest.fixture(scope="module")
def token_masking_stats(minilm, wiki_sop):
    """Run the collator (sub-word n-grams) over every WikiText example and check each batch; return pooled counts."""
    collator = DataCollatorForNgramMLM(
        minilm, seed=0, whole_word_masking=False, pad_to_multiple_of=8, return_spans=True
    )
    special_ids = list(minilm.all_special_ids)
    stats = {"span_lengths": [], "chosen": 0, "candidates": 0, "masked": 0, "kept": 0, "random": 0}
    for examples, batch in collate_all(collator, wiki_sop):
        length = batch["input_ids"].shape[1]
        assert length % 8 == 0 and length - 8 < max(len(e["input_ids"]) for e in examples)
        original = padded(examples, "input_ids", length, minilm.pad_token_id)
        real = padded(examples, "attention_mask", length, 0) == 1
        input_ids, labels = batch["input_ids"].numpy(), batch["labels"].numpy()
        assert (batch["attention_mask"].numpy() == real).all()
        assert (batch["token_type_ids"].numpy() == padded(examples, "token_type_ids", length, 0)).all()
        assert batch["sentence_order_label"].tolist() == [e["sentence_order_label"] for e in examples]
        assert "special_tokens_mask" not in batch

        candidates = real & ~np.isin(original, special_ids)
        chosen = labels != -100
        assert (chosen <= candidates).all()  # never a special token or padding
        assert (labels[chosen] == original[chosen]).all()
        assert (input_ids[~chosen] == original[~chosen]).all()
        for row in range(len(examples)):
            assert chosen[row].sum() == max(1, round(0.15 * candidates[row].sum()))

        from_spans = np.zeros_like(chosen)
        for row, spans in enumerate(batch["spans"]):
            for start, end, n in spans:
                assert end - start == n and 1 <= n <= 3
                assert not from_spans[row, start:end].any()  # spans are disjoint
                from_spans[row, start:end] = True
                stats["span_lengths"].append(n)
        assert (from_spans == chosen).all()  # labels are set exactly on the spans

        new = input_ids[chosen]
        stats["chosen"] += chosen.sum()
        stats["candidates"] += candidates.sum()
        stats["masked"] += (new == minilm.mask_token_id).sum()
        stats["kept"] += (new == original[chosen]).sum()
        replaced = (new != minilm.mask_token_id) & (new != original[chosen])
        stats["random"] += replaced.sum()
        assert not np.isin(new[replaced], special_ids).any()
    return stats


def test_masked_fraction(token_masking_stats):
    stats = token_masking_stats
    assert abs(stats["chosen"] / stats["candidates"] - 0.15) < 0.01


def test_ngram_lengths_follow_one_over_n(token_masking_stats):
    lengths = np.array(token_masking_stats["span_lengths"])
    assert len(lengths) > 30000
    for n, target in zip((1, 2, 3), (6 / 11, 3 / 11, 2 / 11)):
        assert abs(np.mean(lengths == n) - target) < 0.02


def test_ngram_lengths_in_short_sequences(minilm):
    """With a budget of a few tokens, hitting it exactly must not tilt the lengths towards short spans."""
    rng = np.random.default_rng(0)
    examples = []
    for _ in range(3000):
        body = rng.integers(1000, len(minilm), size=rng.integers(20, 41)).tolist()  # no special ids from 1000 up
        examples.append({"input_ids": [minilm.cls_token_id, *body, minilm.sep_token_id]})
    collator = DataCollatorForNgramMLM(minilm, seed=0, whole_word_masking=False, return_spans=True)
    batches = (batch for _, batch in collate_all(collator, examples))
    lengths = np.array([n for batch in batches for spans in batch["spans"] for _, _, n in spans])
    assert len(lengths) > 8000
    for n, target in zip((1, 2, 3), (6 / 11, 3 / 11, 2 / 11)):
        assert abs(np.mean(lengths == n) - target) < 0.015


def test_spans_that_cannot_fit_are_split_not_dropped(minilm):
    # 40 single-token runs between separators: no 2- or 3-gram fits, yet the budget is met.
    ids = [minilm.cls_token_id] + [2000 + i if i % 2 == 0 else minilm.sep_token_id for i in range(80)]
    collator = DataCollatorForNgramMLM(minilm, seed=0, whole_word_masking=False, return_spans=True)
    batch = collator([{"input_ids": ids}] * 50)
    chosen = (batch["labels"] != -100).numpy()
    assert (chosen.sum(axis=1) == round(0.15 * 40)).all()
    assert not np.isin(np.array(ids)[chosen.any(axis=0)], minilm.all_special_ids).any()
    assert all(n == 1 for spans in batch["spans"] for _, _, n in spans)


def test_mask_random_keep_split(token_masking_stats):
    stats = token_masking_stats
    for name, target in (("masked", 0.8), ("random", 0.1), ("kept", 0.1)):
        assert abs(stats[name] / stats["chosen"] - target) < 0.02


def test_masked_runs_are_unions_of_adjacent_spans(minilm, wiki_sop):
    """Read n-grams back from the labels alone: a contiguous masked run holds one or more
    adjacent spans, so there are at most as many runs as spans, holding the same tokens."""
    collator = DataCollatorForNgramMLM(minilm, seed=1, whole_word_masking=False, return_spans=True)
    runs, spans = [], []
    for _, batch in collate_all(collator, wiki_sop[:640]):
        chosen = (batch["labels"] != -100).numpy()
        for row, row_spans in enumerate(batch["spans"]):
            edges = np.diff(np.r_[0, chosen[row].astype(int), 0])
            runs += list(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1))
            spans += [n for _, _, n in row_spans]
    assert sum(runs) == sum(spans)
    assert len(spans) * 0.75 < len(runs) <= len(spans)  # at 15% density few spans touch


def test_collator_is_reproducible_and_needs_no_special_tokens_mask(minilm, wiki_sop):
    examples = wiki_sop[:16]
    first = DataCollatorForNgramMLM(minilm, seed=7)(examples)
    again = DataCollatorForNgramMLM(minilm, seed=7)(examples)
    other = DataCollatorForNgramMLM(minilm, seed=8)(examples)
    # The Trainer drops columns the model does not take, special_tokens_mask among them.
    stripped = [{k: v for k, v in e.items() if k != "special_tokens_mask"} for e in examples]
    without_mask = DataCollatorForNgramMLM(minilm, seed=7)(stripped)
    for name in first:
        assert torch.equal(first[name], again[name])
        assert torch.equal(first[name], without_mask[name])
    assert not torch.equal(first["labels"], other["labels"])


def test_dataloader_workers_mask_differently(minilm, wiki_sop):
    same_example = [wiki_sop[0]] * 2
    loader = torch.utils.data.DataLoader(
        same_example, batch_size=1, num_workers=2, collate_fn=DataCollatorForNgramMLM(minilm, seed=0)
    )
    batch_one, batch_two = list(loader)
    assert not torch.equal(batch_one["labels"], batch_two["labels"])


def word_numbers(tokens: list[str], candidate: np.ndarray, continues_word) -> np.ndarray:
    """Independent reference: number the words of one row (-1 off the candidates). A word is a token and the
    continuation pieces right after it; a run of candidates (a segment) always starts a new word."""
    numbers = np.full(len(tokens), -1)
    word = -1
    for position, token in enumerate(tokens):
        if candidate[position]:
            word += not (continues_word(token) and position > 0 and candidate[position - 1])
            numbers[position] = word
    return numbers


def whole_word_checks(tokenizer, examples, continues_word):
    """Mask with the collator's defaults and check every row against `word_numbers`: each word is masked entirely or
    not at all, each span covers n complete words, and the row's budget is 15% of its words."""
    collator = DataCollatorForNgramMLM(tokenizer, seed=0, return_spans=True)
    span_lengths, chosen, candidates = [], 0, 0
    special_ids = list(tokenizer.all_special_ids)
    for group, batch in collate_all(collator, examples):
        length = batch["input_ids"].shape[1]
        original = padded(group, "input_ids", length, tokenizer.pad_token_id)
        candidate = (batch["attention_mask"].numpy() == 1) & ~np.isin(original, special_ids)
        masked = (batch["labels"] != -100).numpy()
        for row, spans in enumerate(batch["spans"]):
            tokens = tokenizer.convert_ids_to_tokens(original[row].tolist())
            words = word_numbers(tokens, candidate[row], continues_word)
            for word in range(words.max() + 1):
                assert len(set(masked[row, words == word])) == 1  # all of a word's pieces, or none
            masked_words = set(words[masked[row]])
            assert len(masked_words) == max(1, round(0.15 * (words.max() + 1)))
            for start, end, n in spans:
                covered = words[start:end]
                assert -1 not in covered and len(set(covered)) == n  # n whole words
                assert start == 0 or words[start - 1] != words[start]
                assert end == length or words[end] != words[end - 1]
                span_lengths.append(n)
        chosen += masked.sum()
        candidates += candidate.sum()
    return np.array(span_lengths), chosen / candidates


def test_ngrams_of_whole_words_by_default_wordpiece(minilm, wiki_sop):
    span_lengths, fraction = whole_word_checks(minilm, wiki_sop[:1600], lambda token: token.startswith("##"))
    assert abs(fraction - 0.15) < 0.015
    assert len(span_lengths) > 8000
    for n, target in zip((1, 2, 3), (6 / 11, 3 / 11, 2 / 11)):  # p(n) = (1/n) / (1 + 1/2 + 1/3)
        assert abs(np.mean(span_lengths == n) - target) < 0.025


def test_ngrams_of_whole_words_by_default_sentencepiece(unigram, wiki_documents):
    documents = Dataset.from_dict({"lines": wiki_documents[:20]})
    examples = examples_of(build_sop_dataset(documents, unigram, max_seq_length=MAX_SEQ_LENGTH, seed=0))
    span_lengths, fraction = whole_word_checks(unigram, examples, lambda token: not token.startswith("▁"))
    assert abs(fraction - 0.15) < 0.03
    assert set(span_lengths) == {1, 2, 3}


def test_litebert_pretrain_masks_whole_words_unless_told_not_to(tmp_path):
    from litebert.cli.pretrain import parse_arguments

    assert parse_arguments(["--output_dir", str(tmp_path)])[1].whole_word_masking
    assert not parse_arguments(["--output_dir", str(tmp_path), "--no_whole_word_masking"])[1].whole_word_masking
    assert not parse_arguments(["--output_dir", str(tmp_path), "--whole_word_masking", "false"])[1].whole_word_masking


def test_a_row_with_nothing_to_mask_gets_no_labels(minilm, wiki_sop):
    documents = Dataset.from_dict({"lines": [["😀😀 🎉🎉 🙂", "🎉 😀"]]})
    emoji_row = build_sop_dataset(documents, minilm, max_seq_length=32, seed=0)[0]
    assert set(emoji_row["input_ids"]) == {minilm.cls_token_id, minilm.sep_token_id, minilm.unk_token_id}
    for whole_words in (True, False):
        collator = DataCollatorForNgramMLM(minilm, seed=0, whole_word_masking=whole_words)
        alone = collator([emoji_row])
        assert (alone["labels"] == -100).all()
        assert alone["input_ids"][0].tolist() == emoji_row["input_ids"]  # nothing replaced either
        mixed = collator([emoji_row, wiki_sop[0]])
        assert (mixed["labels"][0] == -100).all() and (mixed["labels"][1] != -100).any()


def test_trains_with_the_stock_trainer(unigram, wiki_documents, tmp_path, one_torch_thread):
    from transformers import AlbertConfig, AlbertForPreTraining, Trainer, TrainingArguments

    documents = Dataset.from_dict({"lines": wiki_documents[:4]})
    train_dataset = build_sop_dataset(documents, unigram, max_seq_length=64, max_position_embeddings=64)
    config = AlbertConfig(
        vocab_size=len(unigram), embedding_size=16, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, pad_token_id=unigram.pad_token_id,
    )
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=8, report_to=[], save_strategy="no",
        use_cpu=True, disable_tqdm=True,
    )
    collator = DataCollatorForNgramMLM(unigram, pad_to_multiple_of=8)
    trainer = Trainer(AlbertForPreTraining(config), args, train_dataset=train_dataset, data_collator=collator)
    result = trainer.train()
    assert np.isfinite(result.training_loss)
