"""TNF, taking notes on the fly (Wu et al., ICLR 2021), model side: the note dictionary of LiteBERT's pretraining head.

A note per rare word, the running mean of the last layer's outputs around the word's occurrences, is mixed into the
embedding output of the word's later unmasked occurrences. The data side (rare-word vocabulary, occurrence marking)
lives in `litebert.tnf_data`. This file is copied next to saved weights with the modeling file, so it imports only
torch and its sibling configuration module (relatively).
"""

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from .configuration_litebert import LiteBertConfig


class LiteBertNoteDictionary(nn.Module):
    """TNF's note dictionary (Taking Notes on the Fly, Wu et al., ICLR 2021): one note per rare word.

    `occurrences` rows are `(batch_index, start, end, word_id)`, token positions `start..end` inclusive. Notes are
    buffers: saved with the weights and checkpoints, never trained by gradient.
    """

    def __init__(self, config: LiteBertConfig):
        super().__init__()
        self.note_weight = config.tnf_note_weight
        self.momentum = config.tnf_momentum
        self.window = config.tnf_window
        self.notes = nn.Buffer(torch.zeros(config.tnf_num_rare_words, config.hidden_size))
        self.seen = nn.Buffer(torch.zeros(config.tnf_num_rare_words, dtype=torch.bool))

    @contextmanager
    def mixed_into(
        self, embeddings: nn.Module, occurrences: torch.Tensor, labels: torch.Tensor | None
    ) -> Iterator[None]:
        """Within the block, the output of `embeddings` has the notes of `occurrences` mixed in, except occurrences
        with a prediction target among their tokens: a note describes its word, so it would give the answer away."""
        if labels is not None:
            occurrences = without_prediction_targets(occurrences, labels)
        handle = embeddings.register_forward_hook(lambda module, args, output: self.mix(output, occurrences))
        try:
            yield
        finally:
            handle.remove()

    def mix(self, embedding_output: torch.Tensor, occurrences: torch.Tensor) -> torch.Tensor:
        """`(1 - lambda) * e + lambda * note` at the tokens of seen rare words, `e` elsewhere."""
        weight, notes = self.token_notes(occurrences, *embedding_output.shape[:2])
        weight, notes = weight.to(embedding_output.dtype), notes.to(embedding_output.dtype)
        return (1 - weight) * embedding_output + weight * notes

    def token_notes(
        self, occurrences: torch.Tensor, batch_size: int, seq_length: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token mixing weight (lambda where a seen rare word sits, else 0), `[B, L, 1]`, and notes `[B, L, H]`."""
        occurrences = occurrences[self.seen[occurrences[:, 3]]]
        batch_index, start, end, word = occurrences.unbind(1)
        lengths = end - start + 1
        rows = batch_index.repeat_interleave(lengths)
        starts_in_flat = (lengths.cumsum(0) - lengths).repeat_interleave(lengths)
        offsets = torch.arange(int(lengths.sum()), device=start.device) - starts_in_flat
        columns = start.repeat_interleave(lengths) + offsets
        weight = self.notes.new_zeros(batch_size, seq_length, 1)
        notes = self.notes.new_zeros(batch_size, seq_length, self.notes.shape[1])
        weight[rows, columns] = self.note_weight
        notes[rows, columns] = self.notes[word.repeat_interleave(lengths)]
        return weight, notes

    @torch.no_grad()
    def update(
        self, occurrences: torch.Tensor, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> None:
        """note <- (1 - gamma) note + gamma c (first sighting: note <- c), c the mean last-layer output over each
        occurrence's window, averaged over a word's occurrences in the batch, and across data-parallel ranks."""
        batch_index, start, end, word = occurrences.unbind(1)
        context = _window_means(hidden_states, attention_mask, batch_index, start - self.window, end + self.window)
        words, sums, counts = _sum_by_word(word, context)
        words, sums, counts = _sum_by_word(*_gather_from_ranks(words, sums, counts))
        if len(words) == 0:
            return
        mean = sums / counts[:, None]
        previous = self.notes[words]
        updated = (1 - self.momentum) * previous + self.momentum * mean
        self.notes[words] = torch.where(self.seen[words][:, None], updated, mean).to(self.notes.dtype)
        self.seen[words] = True


def without_prediction_targets(occurrences: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The occurrences none of whose tokens `start..end` carries a label (`labels != -100`)."""
    targets_before = nn.functional.pad((labels != -100).long().cumsum(1), (1, 0))
    batch_index, start, end = occurrences[:, 0], occurrences[:, 1], occurrences[:, 2]
    targets_inside = targets_before[batch_index, end + 1] - targets_before[batch_index, start]
    return occurrences[targets_inside == 0]


def _window_means(
    hidden_states: torch.Tensor,
    attention_mask: torch.Tensor | None,
    batch_index: torch.Tensor,
    first: torch.Tensor,
    last: torch.Tensor,
) -> torch.Tensor:
    """Mean of `hidden_states[b, first..last]` (clipped to the sequence, padding excluded) for each row's window,
    from running sums (float64, so the differences lose nothing) instead of gathering every window."""
    batch_size, seq_length, _ = hidden_states.shape
    if attention_mask is None:
        attention_mask = hidden_states.new_ones(batch_size, seq_length)
    mask = attention_mask.to(torch.float64)
    running = nn.functional.pad((hidden_states.to(torch.float64) * mask[..., None]).cumsum(1), (0, 0, 1, 0))
    running_count = nn.functional.pad(mask.cumsum(1), (1, 0))
    first, last = first.clamp(min=0), (last + 1).clamp(max=seq_length)
    sums = running[batch_index, last] - running[batch_index, first]
    counts = running_count[batch_index, last] - running_count[batch_index, first]
    return (sums / counts[:, None]).to(torch.float32)


def _sum_by_word(words: torch.Tensor, values: torch.Tensor, counts: torch.Tensor | None = None):
    """Unique word ids, the sum of their values and of their counts (1 per row unless `counts` is given)."""
    unique, inverse = torch.unique(words, return_inverse=True)
    sums = values.new_zeros(len(unique), values.shape[1]).index_add_(0, inverse, values)
    row_counts = torch.ones_like(words, dtype=values.dtype) if counts is None else counts
    return unique, sums, values.new_zeros(len(unique)).index_add_(0, inverse, row_counts)


def _gather_from_ranks(words: torch.Tensor, sums: torch.Tensor, counts: torch.Tensor):
    """Every data-parallel rank's per-word sums and counts, concatenated in rank order (so all ranks combine them
    identically and hold bitwise-equal notes); unchanged without torch.distributed."""
    if not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return words, sums, counts
    world_size = torch.distributed.get_world_size()
    if world_size == 1:
        return words, sums, counts
    size = torch.tensor([len(words)], device=words.device)
    sizes = [torch.zeros_like(size) for _ in range(world_size)]
    torch.distributed.all_gather(sizes, size)
    largest = int(max(sizes))
    if largest == 0:  # no rank saw a rare word
        return words, sums, counts
    padding = largest - len(words)
    padded = (
        nn.functional.pad(words, (0, padding)),
        nn.functional.pad(sums, (0, 0, 0, padding)),
        nn.functional.pad(counts, (0, padding)),
    )
    gathered = []
    for tensor in padded:
        parts = [torch.empty_like(tensor) for _ in range(world_size)]
        torch.distributed.all_gather(parts, tensor.contiguous())
        gathered.append(torch.cat([part[: int(n)] for part, n in zip(parts, sizes)]))
    return tuple(gathered)
