"""TNF (Taking Notes on the Fly): the embedding mix and the note update re-derived by hand, lifecycle, DDP."""

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from litebert import LiteBertConfig, LiteBertForPreTraining, LiteBertForSequenceClassification
from litebert.cli.pretrain import parse_arguments, run
from litebert.pretraining_data import DataCollatorForNgramMLM, build_sop_dataset, load_documents
from litebert.tokenization import RareWordVocabulary, build_rare_word_vocabulary, count_words, tokenizer_words

from conftest import tiny_config_kwargs, wikitext_prefix

LAMBDA, GAMMA, K = 0.5, 0.1, 2


def tnf_model(**overrides):
    torch.manual_seed(0)
    kwargs = tiny_config_kwargs(tnf_enabled=True, tnf_num_rare_words=3, tnf_note_weight=LAMBDA, tnf_momentum=GAMMA,
                                tnf_window=K, **overrides)
    return LiteBertForPreTraining(LiteBertConfig(**kwargs))


def hand_made_batch():
    """Word 2 twice (row 0 tokens 1-2, near the left edge; row 1 token 6, with padding inside its window), word 0
    once (row 0 token 7, never seen before)."""
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(5, 99, (2, 10), generator=generator)
    attention_mask = torch.ones(2, 10, dtype=torch.long)
    attention_mask[1, 8:] = 0
    occurrences = torch.tensor([[0, 1, 2, 2], [1, 6, 6, 2], [0, 7, 7, 0]])
    return input_ids, attention_mask, occurrences


def test_embedding_mix_and_note_update_follow_the_formulas():
    model = tnf_model().train()
    input_ids, attention_mask, occurrences = hand_made_batch()
    note_before = torch.randn(32)
    with torch.no_grad():
        model.notes.notes[2] = note_before
        model.notes.seen[2] = True
    outputs = model(input_ids, attention_mask=attention_mask, tnf_occurrences=occurrences, output_hidden_states=True)
    with torch.no_grad():
        plain = model.litebert.embeddings(input_ids)
        expected_input = plain.clone()
        for row, column in ((0, 1), (0, 2), (1, 6)):  # word 2's tokens; word 0 has no note yet
            expected_input[row, column] = (1 - LAMBDA) * plain[row, column] + LAMBDA * note_before
        torch.testing.assert_close(outputs.hidden_states[0], expected_input, atol=1e-6, rtol=0)

        last = outputs.hidden_states[-1]  # the last layer's output the update reads
        context_first = last[0, 0:5].mean(0)  # tokens 1-2, window 1-2 .. 2+2, clipped at 0
        context_second = last[1, 4:8].mean(0)  # token 6, window 4 .. 8, token 8 is padding
        expected_word_2 = (1 - GAMMA) * note_before + GAMMA * (context_first + context_second) / 2
        expected_word_0 = last[0, 5:10].mean(0)  # first sighting: the context itself
    torch.testing.assert_close(model.notes.notes[2], expected_word_2, atol=1e-6, rtol=0)
    torch.testing.assert_close(model.notes.notes[0], expected_word_0, atol=1e-6, rtol=0)
    assert model.notes.seen.tolist() == [True, False, True]
    assert model.notes.notes[1].abs().sum() == 0


def test_evaluation_mixes_notes_but_does_not_update_them():
    model = tnf_model()
    with torch.no_grad():
        model.notes.notes[2] = torch.randn(32)
        model.notes.seen[2] = True
    before = model.notes.notes.clone()
    input_ids, attention_mask, occurrences = hand_made_batch()
    model.eval()
    with torch.no_grad():
        mixed = model(input_ids, attention_mask=attention_mask, tnf_occurrences=occurrences).prediction_logits
        plain = model(input_ids, attention_mask=attention_mask).prediction_logits
    assert torch.equal(model.notes.notes, before)
    assert (mixed - plain).abs().max() > 1e-4


def test_notes_are_never_mixed_into_prediction_targets():
    """Word 2 occurs twice, word 0 once, all with notes. Labelling the second piece of word 2's first occurrence
    keeps its note out of both its tokens; the unlabelled occurrences are still mixed. Every occurrence, the labelled
    one included, still updates its note from its context."""
    model = tnf_model().train()
    input_ids, attention_mask, occurrences = hand_made_batch()
    with torch.no_grad():
        model.notes.notes[:] = torch.randn(3, 32)
        model.notes.seen[:] = True
    notes_before = model.notes.notes.clone()
    labels = torch.full_like(input_ids, -100)
    labels[0, 2] = input_ids[0, 2]
    labels[1, 0] = input_ids[1, 0]  # a target outside every occurrence changes nothing
    outputs = model(input_ids, attention_mask=attention_mask, tnf_occurrences=occurrences, labels=labels,
                    output_hidden_states=True)
    with torch.no_grad():
        plain = model.litebert.embeddings(input_ids)
        expected_input = plain.clone()
        expected_input[1, 6] = (1 - LAMBDA) * plain[1, 6] + LAMBDA * notes_before[2]
        expected_input[0, 7] = (1 - LAMBDA) * plain[0, 7] + LAMBDA * notes_before[0]
        torch.testing.assert_close(outputs.hidden_states[0], expected_input, atol=1e-6, rtol=0)
        last = outputs.hidden_states[-1]
        contexts = (last[0, 0:5].mean(0) + last[1, 4:8].mean(0)) / 2
    expected = (1 - GAMMA) * notes_before[2] + GAMMA * contexts
    torch.testing.assert_close(model.notes.notes[2], expected, atol=1e-6, rtol=0)


def test_the_prediction_at_a_masked_rare_word_does_not_depend_on_its_note():
    """A note summarises its word, so reading it would turn MLM on rare words into copying: with the word's only
    occurrence masked and labelled, two very different notes must give identical logits and loss."""
    model = tnf_model().eval()
    input_ids, attention_mask, occurrences = hand_made_batch()
    masked = input_ids.clone()
    masked[0, 1:3] = 4
    labels = torch.full_like(input_ids, -100)
    labels[0, 1:3] = input_ids[0, 1:3]
    results = []
    for note in (torch.zeros(32), torch.randn(32) * 10):
        with torch.no_grad():
            model.notes.notes[2] = note
            model.notes.seen[2] = True
            outputs = model(masked, attention_mask=attention_mask, tnf_occurrences=occurrences[:1], labels=labels,
                            sentence_order_label=torch.zeros(2, dtype=torch.long))
        results.append((outputs.prediction_logits, outputs.loss))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])
    with torch.no_grad():  # without labels (inference on unmasked text) the note is read
        unlabelled = model(masked, attention_mask=attention_mask, tnf_occurrences=occurrences[:1]).prediction_logits
    assert not torch.equal(unlabelled, results[1][0])


def test_notes_update_with_the_model_in_bfloat16():
    model = tnf_model().train().to(torch.bfloat16)
    input_ids, attention_mask, occurrences = hand_made_batch()
    model(input_ids, attention_mask=attention_mask, tnf_occurrences=occurrences)
    assert model.notes.notes.dtype == torch.bfloat16
    assert model.notes.seen.tolist() == [True, False, True]
    assert model.notes.notes[2].abs().sum() > 0


def test_notes_receive_no_gradient():
    model = tnf_model().train()
    input_ids, attention_mask, occurrences = hand_made_batch()
    with torch.no_grad():
        model.notes.seen[:] = True
        model.notes.notes.normal_()
    outputs = model(input_ids, attention_mask=attention_mask, tnf_occurrences=occurrences)
    outputs.prediction_logits.sum().backward()
    assert "notes.notes" not in dict(model.named_parameters())
    assert not model.notes.notes.requires_grad and model.notes.notes.grad is None
    assert model.litebert.embeddings.word_embeddings.weight.grad.abs().sum() > 0


def test_disabled_tnf_is_the_plain_model():
    enabled = tnf_model()
    torch.manual_seed(0)
    disabled = LiteBertForPreTraining(LiteBertConfig(**tiny_config_kwargs()))
    missing, unexpected = disabled.load_state_dict(enabled.state_dict(), strict=False)
    assert missing == [] and set(unexpected) == {"notes.notes", "notes.seen"}
    assert not any(name.startswith("notes") for name in disabled.state_dict())
    input_ids, attention_mask, _ = hand_made_batch()
    with torch.no_grad():
        no_occurrences = torch.zeros(0, 4, dtype=torch.long)
        a = enabled.eval()(input_ids, attention_mask=attention_mask, tnf_occurrences=no_occurrences)
        b = disabled.eval()(input_ids, attention_mask=attention_mask)
    assert torch.equal(a.prediction_logits, b.prediction_logits) and torch.equal(a.sop_logits, b.sop_logits)
    with pytest.raises(ValueError, match="tnf_enabled is False"):
        disabled(input_ids, tnf_occurrences=no_occurrences)


def test_fine_tuning_heads_drop_the_notes(tmp_path):
    model = tnf_model().train()
    input_ids, attention_mask, occurrences = hand_made_batch()
    model(input_ids, attention_mask=attention_mask, tnf_occurrences=occurrences)  # some notes taken
    model.save_pretrained(tmp_path / "tnf")
    assert load_file(str(tmp_path / "tnf" / "model.safetensors"))["notes.seen"].sum() == 2
    torch.manual_seed(0)
    plain = LiteBertForPreTraining(LiteBertConfig(**tiny_config_kwargs()))
    plain.load_state_dict(model.state_dict(), strict=False)
    plain.save_pretrained(tmp_path / "plain")
    torch.manual_seed(1)
    classifier = LiteBertForSequenceClassification.from_pretrained(tmp_path / "tnf").eval()
    torch.manual_seed(1)
    reference = LiteBertForSequenceClassification.from_pretrained(tmp_path / "plain").eval()
    assert classifier.config.tnf_enabled is False
    assert not any("notes" in name for name in classifier.state_dict())
    with torch.no_grad():
        assert torch.equal(classifier(input_ids, attention_mask=attention_mask).logits,
                           reference(input_ids, attention_mask=attention_mask).logits)
    classifier.save_pretrained(tmp_path / "classifier")
    assert json.loads((tmp_path / "classifier" / "config.json").read_text()).get("tnf_enabled", False) is False


def test_config_refuses_tnf_without_rare_words():
    with pytest.raises(ValueError, match="tnf_num_rare_words=0 is invalid"):
        LiteBertConfig(tnf_enabled=True)
    with pytest.raises(ValueError, match="tnf_note_weight=1.5"):
        LiteBertConfig(tnf_enabled=True, tnf_num_rare_words=3, tnf_note_weight=1.5)


# --- rare-word vocabulary and occurrence marking ------------------------------------------------------------------


@pytest.fixture(scope="module")
def wiki_file(tmp_path_factory) -> Path:
    return wikitext_prefix(tmp_path_factory.mktemp("tnf") / "wiki.txt", 1500)


def test_word_counts_and_rare_selection(wordpiece_tokenizer, wiki_file, tmp_path):
    documents = load_documents(train_files=[str(wiki_file)])
    counts = count_words(documents, wordpiece_tokenizer, num_proc=2)
    direct = Counter(word for document in documents["lines"] for line in document
                     for word in tokenizer_words(wordpiece_tokenizer, line))
    assert counts == direct and counts["the"] > 1000
    vocabulary = build_rare_word_vocabulary(counts, wordpiece_tokenizer, min_count=5, max_count=20)
    assert all(5 <= count <= 20 and counts[word] == count for word, count in zip(vocabulary.words, vocabulary.counts))
    assert all(any(c.isalpha() for c in word) for word in vocabulary.words)
    assert vocabulary.token_ids[vocabulary.words.index(vocabulary.words[0])] == wordpiece_tokenizer(
        vocabulary.words[0], add_special_tokens=False)["input_ids"]
    top = build_rare_word_vocabulary(counts, wordpiece_tokenizer, min_count=5, top_n=50)
    assert len(top) == 50 and max(top.counts) <= min(c for w, c in counts.items() if c >= 5 and w not in top.words
                                                     and any(ch.isalpha() for ch in w))
    vocabulary.save(tmp_path)
    assert RareWordVocabulary.load(tmp_path) == vocabulary
    with pytest.raises(ValueError, match="No rare words"):
        build_rare_word_vocabulary(counts, wordpiece_tokenizer, min_count=10**6, max_count=10**7)


def test_collator_marks_every_whole_word_occurrence(wordpiece_tokenizer, wiki_file):
    documents = load_documents(train_files=[str(wiki_file)])
    counts = count_words(documents, wordpiece_tokenizer)
    vocabulary = build_rare_word_vocabulary(counts, wordpiece_tokenizer, min_count=3, max_count=30)
    examples = build_sop_dataset(documents, wordpiece_tokenizer, max_seq_length=64, seed=0)
    collator = DataCollatorForNgramMLM(wordpiece_tokenizer, rare_words=vocabulary, seed=0)
    rows = [examples[i] for i in range(64)]
    batch = collator(rows)
    found = {tuple(row) for row in batch["tnf_occurrences"].tolist()}
    # independent reference: group each sequence's pieces into words ('##' continues a word), look each word up
    by_pieces = {tuple(pieces): index for index, pieces in enumerate(vocabulary.token_ids)}
    expected = set()
    for row, example in enumerate(rows):
        ids = example["input_ids"]
        tokens = wordpiece_tokenizer.convert_ids_to_tokens(ids)
        start = 0
        for position in range(1, len(ids) + 1):
            if position == len(ids) or not tokens[position].startswith("##"):
                word = tuple(ids[start:position])
                if word in by_pieces:
                    expected.add((row, start, position - 1, by_pieces[word]))
                start = position
    assert len(expected) > 20 and found == expected


# --- lifecycle: resume and data parallel --------------------------------------------------------------------------

TINY = ("hidden_size=32,num_attention_heads=2,intermediate_size=64,num_hidden_layers=2,embedding_size=16,"
        "max_position_embeddings=64")


def pretrain_tnf(output_dir, corpus, *extra):
    argv = ["--output_dir", str(output_dir), "--train_file", str(corpus), "--config_overrides", TINY,
            "--tokenizer_vocab_size", "800", "--max_seq_length", "64", "--per_device_train_batch_size", "8",
            "--report_to", "none", "--use_cpu", "true", "--seed", "0", "--do_train", "--tnf",
            "--tnf_min_count", "3", "--tnf_max_count", "30", "--logging_steps", "1", *extra]
    return run(*parse_arguments(argv))


def test_resumed_run_equals_the_uninterrupted_one(wiki_file, tmp_path):
    pretrain_tnf(tmp_path, wiki_file, "--max_steps", "8", "--save_steps", "4")
    uninterrupted = load_file(str(tmp_path / "model.safetensors"))
    assert uninterrupted["notes.seen"].sum() > 10
    shutil.rmtree(tmp_path / "checkpoint-8")  # as if killed after the checkpoint at step 4
    (tmp_path / "model.safetensors").unlink()
    pretrain_tnf(tmp_path, wiki_file, "--max_steps", "8", "--save_steps", "4")
    resumed = load_file(str(tmp_path / "model.safetensors"))
    checkpoint = load_file(str(tmp_path / "checkpoint-4" / "model.safetensors"))
    assert not torch.equal(checkpoint["notes.notes"], resumed["notes.notes"])  # notes moved on after step 4
    for name, tensor in uninterrupted.items():
        assert torch.equal(resumed[name], tensor), name


DDP_SCRIPT = """
import os, sys, torch
import torch.distributed as dist
from litebert import LiteBertConfig, LiteBertForPreTraining

dist.init_process_group("gloo")
rank = int(sys.argv[2]) if len(sys.argv) > 2 else dist.get_rank()
torch.manual_seed(0)
config = LiteBertConfig(vocab_size=99, embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=37, max_position_embeddings=64, tnf_enabled=True, tnf_num_rare_words=6,
                        tnf_window=2)
model = LiteBertForPreTraining(config).train()
model = torch.nn.parallel.DistributedDataParallel(model)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
data = torch.Generator().manual_seed(100 + rank)  # every rank its own shard
for step in range(3):
    input_ids = torch.randint(5, 99, (4, 12), generator=data)
    occurrences = torch.stack([torch.randint(0, 4, (5,), generator=data), torch.randint(0, 10, (5,), generator=data),
                               torch.zeros(5, dtype=torch.long), torch.randint(0, 6, (5,), generator=data)], dim=1)
    occurrences[:, 2] = occurrences[:, 1]
    labels = input_ids.clone()
    loss = model(input_ids, labels=labels, sentence_order_label=torch.zeros(4, dtype=torch.long),
                 tnf_occurrences=occurrences).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
world = dist.get_world_size()
notes = {"notes": model.module.notes.notes, "seen": model.module.notes.seen}
torch.save(notes, sys.argv[1] + f"/notes-w{world}-r{rank}.pt")
dist.barrier()  # no rank tears gloo down while another still talks to it
dist.destroy_process_group()
"""


def test_notes_are_identical_on_every_rank(tmp_path):
    script = tmp_path / "ddp_tnf.py"
    script.write_text(DDP_SCRIPT)
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    for nproc, port, extra in ((2, "29531", []), (1, "29532", ["0"])):  # 2 ranks; then rank 0's shard alone
        command = [torchrun, "--nproc_per_node", str(nproc), "--master_port", port, str(script), str(tmp_path), *extra]
        completed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
        assert completed.returncode == 0, completed.stderr[-3000:]
    rank_0, rank_1 = (torch.load(tmp_path / f"notes-w2-r{r}.pt", weights_only=True) for r in (0, 1))
    assert torch.equal(rank_0["notes"], rank_1["notes"]) and torch.equal(rank_0["seen"], rank_1["seen"])
    assert rank_0["seen"].all()
    single = torch.load(tmp_path / "notes-w1-r0.pt", weights_only=True)
    assert not torch.equal(single["notes"], rank_1["notes"])


def test_fine_tuning_heads_leave_the_callers_config_alone():
    config = LiteBertConfig(**tiny_config_kwargs(tnf_enabled=True, tnf_num_rare_words=3))
    classifier = LiteBertForSequenceClassification(config)
    assert config.tnf_enabled and not classifier.config.tnf_enabled
    assert LiteBertForPreTraining(config).notes is not None


def test_the_base_model_takes_no_notes_argument():
    """Notes reach the encoder through the pretraining head's hook on the embeddings, not LiteBertModel.forward."""
    import inspect

    from litebert import LiteBertModel

    assert not any("note" in name for name in inspect.signature(LiteBertModel.forward).parameters)
    model = tnf_model().train()
    input_ids, attention_mask, occurrences = hand_made_batch()
    model(input_ids, attention_mask=attention_mask, tnf_occurrences=occurrences)
    assert not model.litebert.embeddings._forward_hooks  # the mixing hook is gone after the forward pass
