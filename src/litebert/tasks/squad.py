"""SQuAD v1.1 and v2.0: reading the official JSON, the official evaluation, and the window
preprocessing / answer postprocessing around an extractive QA model with a fast tokenizer.

Examples are flat dicts, one per question, in the layout of the Hub's `squad` datasets:

    {"id", "title", "context", "question",
     "answers": {"text": [...], "answer_start": [...]}, "is_impossible": bool}

    >>> squad = read_squad("squad/dev-v1.1.json")
    >>> len(squad.examples), squad.version_2_with_negative
    (10570, False)
"""

from __future__ import annotations

import logging
import math
import re
import string
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from os import PathLike
from typing import TYPE_CHECKING, Any, NamedTuple, TypedDict

import numpy as np

from .io import DataFormatError, as_columns, read_json_file

if TYPE_CHECKING:
    from numpy.typing import ArrayLike
    from transformers import BatchEncoding, PreTrainedTokenizerBase

    from .io import ColumnData

logger = logging.getLogger(__name__)

# Above this share of answers not found at their answer_start, training would learn from wrong spans: refuse the file.
MAX_MISALIGNED_FRACTION = 0.5


# ----------------------------------------------------------------------------- reading


class SquadAnswers(TypedDict):
    text: list[str]  # empty for a question without answer (SQuAD 2.0)
    answer_start: list[int]  # character offsets into the context


class SquadExample(TypedDict):
    """One question, in the layout of the Hub's `squad` datasets."""

    id: str
    title: str
    context: str
    question: str
    answers: SquadAnswers
    is_impossible: bool


class SquadData(NamedTuple):
    examples: list[SquadExample]  # one dict per question
    version_2_with_negative: bool  # True when questions may have no answer (SQuAD 2.0)
    misaligned_answers: int  # answers whose text is not at their answer_start in the context


def read_squad(path: str | PathLike[str], version_2_with_negative: bool | None = None) -> SquadData:
    """Read an official SQuAD JSON file into a SquadData of flat examples.

    SQuAD 2.0 is detected from the file (a "v2..." version field or `is_impossible` keys) unless
    `version_2_with_negative` is given. Answers whose text is not found at their answer_start
    are kept (the evaluation uses only the text), counted in `misaligned_answers` and logged; when
    more than half of them are (MAX_MISALIGNED_FRACTION), the offsets do not belong to these
    contexts (another file's, or counted in bytes) and a DataFormatError says how many.
    A missing key raises DataFormatError naming the file and the JSON path, such as
    data[3].paragraphs[0].qas[5].
    """
    return flatten_squad(read_json_file(path), version_2_with_negative, source=path)


def flatten_squad(dataset: dict[str, Any], version_2_with_negative: bool | None = None,
                  source: str | PathLike[str] = "<SQuAD JSON>") -> SquadData:
    """Flatten an already parsed SQuAD JSON object ({"version", "data": [...]}); see read_squad."""
    if not isinstance(dataset, dict) or not isinstance(dataset.get("data"), list):
        raise DataFormatError(source, "top level", "expected an object with a 'data' list")
    if version_2_with_negative is None:
        version_2_with_negative = _looks_like_v2(dataset)

    examples, misaligned, total, first_misaligned = [], 0, 0, None
    for a, article in enumerate(dataset["data"]):
        for p, paragraph in enumerate(_required(article, "paragraphs", source, f"data[{a}]")):
            where = f"data[{a}].paragraphs[{p}]"
            context = _required(paragraph, "context", source, where)
            for q, qa in enumerate(_required(paragraph, "qas", source, where)):
                where = f"data[{a}].paragraphs[{p}].qas[{q}]"
                texts, starts = [], []
                for i, answer in enumerate(_required(qa, "answers", source, where)):
                    text = _required(answer, "text", source, f"{where}.answers[{i}]")
                    start = _required(answer, "answer_start", source, f"{where}.answers[{i}]")
                    if not isinstance(start, int) or isinstance(start, bool):
                        raise DataFormatError(source, f"{where}.answers[{i}]",
                                              f"expected an integer answer_start, found {start!r}")
                    texts.append(text)
                    starts.append(start)
                    if context[start:start + len(text)] != text:
                        misaligned += 1
                        first_misaligned = first_misaligned or (f"{where}.answers[{i}]", text, start)
                total += len(texts)
                if not texts and not version_2_with_negative:
                    raise DataFormatError(source, where, "question has no answers; SQuAD v1.1 needs one "
                                          "(pass version_2_with_negative=True for SQuAD 2.0 files)")
                examples.append({
                    "id": _required(qa, "id", source, where),
                    "title": article.get("title", ""),
                    "context": context,
                    "question": _required(qa, "question", source, where),
                    "answers": {"text": texts, "answer_start": starts},
                    "is_impossible": bool(qa.get("is_impossible", not texts)),
                })
    _check_alignment(source, misaligned, total, first_misaligned)
    return SquadData(examples, version_2_with_negative, misaligned)


def _check_alignment(source: str | PathLike[str], misaligned: int, total: int,
                     first_misaligned: tuple[str, str, int] | None) -> None:
    if not misaligned:
        return
    where, text, start = first_misaligned
    summary = (f"{misaligned} of {total} answers are not found at their answer_start "
               f"(first: {where}, {text!r} at {start})")
    if misaligned > MAX_MISALIGNED_FRACTION * total:
        raise DataFormatError(source, "", f"{summary}; more than {MAX_MISALIGNED_FRACTION:.0%} means the offsets do "
                              "not match the contexts (another file's answers, or offsets counted in bytes)")
    logger.warning("%s: %s", source, summary)


def _required(mapping: object, key: str, source: str | PathLike[str], where: str) -> Any:  # any JSON value
    if not isinstance(mapping, dict):
        raise DataFormatError(source, where, f"expected a JSON object, found {type(mapping).__name__}")
    if key not in mapping:
        raise DataFormatError(source, where, f"missing key {key!r}")
    return mapping[key]


def _looks_like_v2(dataset: dict[str, Any]) -> bool:
    if str(dataset.get("version", "")).lstrip("v").startswith("2"):
        return True
    return any("is_impossible" in qa
               for article in dataset["data"] if isinstance(article, dict)
               for paragraph in article.get("paragraphs", []) if isinstance(paragraph, dict)
               for qa in paragraph.get("qas", []) if isinstance(qa, dict))


# ----------------------------------------------------------------------------- evaluation

_DROP_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text: str) -> str:
    """Lower-case, drop ASCII punctuation, drop the articles a/an/the, collapse whitespace.

    >>> normalize_answer("The  Denver Broncos!")
    'denver broncos'
    """
    text = text.lower().translate(_DROP_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, ground_truth: str) -> int:
    """1 if both normalize to the same string, else 0.

    >>> exact_match("the Broncos", "Broncos.")
    1
    """
    return int(normalize_answer(prediction) == normalize_answer(ground_truth))


def f1_score(prediction: str, ground_truth: str) -> float:
    """Harmonic mean of token precision and recall after normalization (tokens counted with
    multiplicity). If either side has no tokens (a no-answer), 1 when both are empty, else 0.

    >>> f1_score("Denver Broncos team", "the Denver Broncos")  # P = 2/3, R = 1
    0.8
    """
    predicted, gold = normalize_answer(prediction).split(), normalize_answer(ground_truth).split()
    if not predicted or not gold:
        return float(predicted == gold)
    shared = sum((Counter(predicted) & Counter(gold)).values())
    if shared == 0:
        return 0.0
    precision, recall = shared / len(predicted), shared / len(gold)
    return 2 * precision * recall / (precision + recall)


def _question_scores(prediction: str, gold_texts: list[str], version_2: bool) -> tuple[int, float]:
    """(exact, f1) of one prediction: the best over the gold answers."""
    if version_2:
        # v2.0 drops golds that normalize to nothing; no gold left means "no answer" = ""
        gold_texts = [g for g in gold_texts if normalize_answer(g)] or [""]
        return (max(exact_match(prediction, g) for g in gold_texts),
                max(f1_score(prediction, g) for g in gold_texts))
    if not gold_texts:
        raise ValueError("a question without gold answers needs version_2_with_negative=True")
    # v1.1 keeps every gold, and its F1 is 0 whenever the prediction has no tokens
    exact = max(exact_match(prediction, g) for g in gold_texts)
    f1 = max(f1_score(prediction, g) for g in gold_texts) if normalize_answer(prediction) else 0.0
    return exact, f1


def squad_evaluate(
    examples_or_dataset_json: SquadData | Iterable[Mapping[str, Any]] | dict[str, Any],
    predictions: Mapping[str, str],
    na_probs: Mapping[str, float] | None = None,
    na_prob_thresh: float = 1.0,
    version_2_with_negative: bool | None = None,
) -> dict[str, float]:
    """Score predictions ({question id: answer text}) as the official SQuAD scripts do, in percent.

    `examples_or_dataset_json` is a SquadData, a list (or datasets.Dataset) of flat examples, or
    the parsed official JSON. The version is detected as in read_squad unless given.

    v1.1 returns exact, f1, total; a question without prediction scores 0 (with a warning).
    v2.0 needs a prediction ("" for no answer) for every question and returns exact, f1, total,
    HasAns_*/NoAns_* for the answerable and unanswerable subsets, and, when `na_probs`
    ({id: no-answer probability or score}) is given, best_exact/best_f1 with the thresholds that
    reach them. Questions with na_probs[id] > na_prob_thresh count as predicted "no answer".

    >>> squad_evaluate(squad, {ex["id"]: ex["answers"]["text"][0] for ex in squad.examples})
    {'exact': 100.0, 'f1': 100.0, 'total': 10570}
    """
    examples, version_2 = _evaluation_examples(examples_or_dataset_json, version_2_with_negative)
    has_answer = {ex["id"]: bool(ex["answers"]["text"]) for ex in examples}
    missing = [qid for qid in has_answer if qid not in predictions]
    if missing and version_2:
        raise ValueError(f"{len(missing)} questions have no prediction (first: {missing[:3]}); "
                         f"SQuAD 2.0 scoring needs one for every question, '' for no answer")
    if missing:
        logger.warning("%d of %d questions have no prediction and score 0", len(missing), len(has_answer))

    exact, f1 = {}, {}
    for ex in examples:
        qid = ex["id"]
        if qid in predictions:
            exact[qid], f1[qid] = _question_scores(predictions[qid], list(ex["answers"]["text"]), version_2)
        else:
            exact[qid], f1[qid] = 0, 0.0
    if not version_2:
        return _summary(exact, f1, list(exact))

    probs = {qid: 0.0 for qid in exact} if na_probs is None else {
        qid: float(na_probs[qid]) for qid in na_probs if qid in exact}
    if len(probs) != len(exact):
        raise ValueError(f"na_probs lacks {len(exact) - len(probs)} of the {len(exact)} questions")
    # a question whose no-answer probability passes the threshold is answered with "no answer"
    exact_at = {q: float(not has_answer[q]) if probs[q] > na_prob_thresh else exact[q] for q in exact}
    f1_at = {q: float(not has_answer[q]) if probs[q] > na_prob_thresh else f1[q] for q in exact}
    result = _summary(exact_at, f1_at, list(exact))
    for name, answerable in (("HasAns", True), ("NoAns", False)):
        subset = [q for q in exact if has_answer[q] == answerable]
        if subset:
            result.update({f"{name}_{key}": value for key, value in _summary(exact_at, f1_at, subset).items()})
    if na_probs is not None:
        result["best_exact"], result["best_exact_thresh"] = _best_threshold(exact, probs, has_answer, predictions)
        result["best_f1"], result["best_f1_thresh"] = _best_threshold(f1, probs, has_answer, predictions)
    return result


def _evaluation_examples(
    data: SquadData | Iterable[Mapping[str, Any]] | dict[str, Any], version_2_with_negative: bool | None
) -> tuple[Sequence[Mapping[str, Any]], bool]:
    if isinstance(data, SquadData):
        version_2 = data.version_2_with_negative if version_2_with_negative is None else version_2_with_negative
        return data.examples, version_2
    if isinstance(data, dict):
        flat = flatten_squad(data, version_2_with_negative)
        return flat.examples, flat.version_2_with_negative
    examples = list(data)
    if version_2_with_negative is None:
        version_2_with_negative = any(ex.get("is_impossible") or not ex["answers"]["text"] for ex in examples)
    return examples, version_2_with_negative


def _summary(exact: Mapping[str, float], f1: Mapping[str, float], qids: Sequence[str]) -> dict[str, float]:
    return {"exact": 100.0 * sum(exact[q] for q in qids) / len(qids),
            "f1": 100.0 * sum(f1[q] for q in qids) / len(qids),
            "total": len(qids)}


def _best_threshold(scores: Mapping[str, float], probs: dict[str, float], has_answer: Mapping[str, bool],
                    predictions: Mapping[str, str]) -> tuple[float, float]:
    """The best total score over all no-answer thresholds, and the threshold reaching it.

    Start with every question answered "no answer" (each unanswerable one scores 1), then
    answer questions in order of rising probability: an answerable one adds its score, an
    unanswerable one loses its point if the prediction is not empty."""
    score = best = sum(not answerable for answerable in has_answer.values())
    best_thresh = 0.0
    for qid in sorted(probs, key=probs.get):
        if has_answer[qid]:
            score += scores[qid]
        elif predictions[qid]:
            score -= 1
        if score > best:
            best, best_thresh = score, probs[qid]
    return 100.0 * best / len(scores), best_thresh


# ----------------------------------------------------------------------------- features

CLS_INDEX = 0  # [CLS] opens the sequence in BERT/ALBERT-style tokenizers


def _shorten_questions(questions: Iterable[str], tokenizer: PreTrainedTokenizerBase,
                       max_query_length: int | None) -> list[str]:
    """Strip leading spaces (some SQuAD questions carry dozens) and cut every question after its
    first max_query_length tokens, so that long questions leave room for the context."""
    questions = [q.lstrip() for q in questions]
    if max_query_length is None:
        return questions
    offsets = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return [q if len(spans) <= max_query_length else q[:spans[max_query_length - 1][1]]
            for q, spans in zip(questions, offsets)]


def _encode_windows(tokenizer: PreTrainedTokenizerBase, questions: list[str], contexts: list[str],
                    max_seq_length: int, doc_stride: int) -> BatchEncoding:
    """Tokenize (question, context) pairs; a long context is split over several windows that
    share doc_stride tokens, each repeating the question. Windows are not padded: the collator pads
    each batch to its longest window."""
    if not tokenizer.is_fast:
        raise ValueError("SQuAD preprocessing needs a fast tokenizer (it uses offset mappings)")
    return tokenizer(
        questions, contexts, truncation="only_second", max_length=max_seq_length, stride=doc_stride,
        return_overflowing_tokens=True, return_offsets_mapping=True,
    )


def _answer_token_span(answers: SquadAnswers, offsets: Sequence[tuple[int, int]],
                       sequence_ids: Sequence[int | None]) -> tuple[int, int] | None:
    """Token positions (start, end) of the first answer in one window, or None when there is no
    answer or it does not lie wholly inside the window's context."""
    if not answers["answer_start"]:
        return None
    start_char = answers["answer_start"][0]
    end_char = start_char + len(answers["text"][0])
    context = [i for i, sequence in enumerate(sequence_ids) if sequence == 1]
    if not context or offsets[context[0]][0] > start_char or offsets[context[-1]][1] < end_char:
        return None
    start = next(i for i in context if offsets[i][1] > start_char)
    end = next(i for i in reversed(context) if offsets[i][0] < end_char)
    return start, end


def prepare_train_features(
    examples: ColumnData, tokenizer: PreTrainedTokenizerBase, max_seq_length: int = 384, doc_stride: int = 128,
    max_query_length: int | None = 64,
) -> dict[str, list[list[int]] | list[int]]:
    """Training features, one per context window, for a batched `Dataset.map` (or any dict of
    lists / list of example dicts with question, context, answers).

    Adds start_positions/end_positions: the token span of the first answer, or CLS_INDEX for
    both when the window does not hold the whole answer (or the question has none). doc_stride is
    the number of context tokens two consecutive windows share.

    >>> features = train.map(prepare_train_features, batched=True, remove_columns=train.column_names,
    ...                      fn_kwargs={"tokenizer": tokenizer, "max_seq_length": 384, "doc_stride": 128})
    """
    columns = as_columns(examples, ["question", "context", "answers"])
    questions = _shorten_questions(columns["question"], tokenizer, max_query_length)
    encoded = _encode_windows(tokenizer, questions, columns["context"], max_seq_length, doc_stride)
    example_of_window = encoded.pop("overflow_to_sample_mapping")
    offsets_of_window = encoded.pop("offset_mapping")

    starts, ends = [], []
    for window, offsets in enumerate(offsets_of_window):
        answers = columns["answers"][example_of_window[window]]
        span = _answer_token_span(answers, offsets, encoded.sequence_ids(window))
        start, end = span if span else (CLS_INDEX, CLS_INDEX)
        starts.append(start)
        ends.append(end)
    return {**encoded, "start_positions": starts, "end_positions": ends}


def prepare_validation_features(
    examples: ColumnData, tokenizer: PreTrainedTokenizerBase, max_seq_length: int = 384, doc_stride: int = 128,
    max_query_length: int | None = 64,
) -> dict[str, list[list[int]] | list[str] | list[list[tuple[int, int] | None]]]:
    """Evaluation features, one per context window: the model inputs plus example_id (the
    question id) and offset_mapping, which is None for every token outside the context so that
    postprocessing can only pick context spans."""
    columns = as_columns(examples, ["id", "question", "context"])
    questions = _shorten_questions(columns["question"], tokenizer, max_query_length)
    encoded = _encode_windows(tokenizer, questions, columns["context"], max_seq_length, doc_stride)
    example_of_window = encoded.pop("overflow_to_sample_mapping")
    offsets_of_window = encoded.pop("offset_mapping")

    offset_mapping = [
        [span if sequence == 1 else None for span, sequence in zip(offsets, encoded.sequence_ids(window))]
        for window, offsets in enumerate(offsets_of_window)
    ]
    example_id = [columns["id"][i] for i in example_of_window]
    return {**encoded, "example_id": example_id, "offset_mapping": offset_mapping}


# ----------------------------------------------------------------------------- postprocessing


class AnswerCandidate(TypedDict):
    text: str  # "" for the no-answer candidate
    start_logit: float
    end_logit: float
    score: float  # start_logit + end_logit


class RankedAnswer(AnswerCandidate):
    probability: float  # softmax of the scores over a question's n-best candidates


def _window_candidates(start_logits: np.ndarray, end_logits: np.ndarray, offsets: Sequence[Sequence[int] | None],
                       context: str, n_best_size: int, max_answer_length: int) -> list[AnswerCandidate]:
    """Scored answer spans of one window from its n_best_size best starts and ends."""
    # logits of a batch padded beyond this window (padded with -100 across batches) are no positions of it
    start_logits, end_logits = start_logits[:len(offsets)], end_logits[:len(offsets)]
    best_starts = np.argsort(start_logits)[::-1][:n_best_size]
    best_ends = np.argsort(end_logits)[::-1][:n_best_size]
    candidates = []
    for start in best_starts:
        for end in best_ends:
            if offsets[start] is None or offsets[end] is None:
                continue  # outside the context
            if end < start or end - start + 1 > max_answer_length:
                continue
            candidates.append({
                "text": context[offsets[start][0]:offsets[end][1]],
                "start_logit": float(start_logits[start]),
                "end_logit": float(end_logits[end]),
                "score": float(start_logits[start] + end_logits[end]),
            })
    return candidates


def postprocess_predictions(
    examples: ColumnData, features: ColumnData, start_logits: ArrayLike, end_logits: ArrayLike,
    n_best_size: int = 20, max_answer_length: int = 30, version_2_with_negative: bool = False,
    null_score_diff_threshold: float = 0.0,
) -> tuple[dict[str, str], dict[str, float], dict[str, list[RankedAnswer]]]:
    """Turn per-window start/end logits back into answer texts.

    examples: list / dict of lists / Dataset with id and context; features: the output of
    prepare_validation_features (example_id, offset_mapping); start_logits/end_logits:
    arrays [num_features, seq_len] (seq_len may exceed a window's length: the positions past it
    are ignored). Each question takes the best-scoring span (start + end
    logit) over all its windows. For SQuAD 2.0 the null score is the lowest [CLS] score over the
    windows, and the answer is "" when null score - best span score > null_score_diff_threshold.

    Returns (predictions {id: text}, null_odds {id: null score - best span score}, empty for
    v1.1, and nbest {id: list of candidates with text, start_logit, end_logit, score, probability}).
    """
    example_columns = as_columns(examples, ["id", "context"])
    feature_columns = as_columns(features, ["example_id", "offset_mapping"])
    start_logits, end_logits = np.asarray(start_logits), np.asarray(end_logits)
    windows_of = defaultdict(list)
    for window, qid in enumerate(feature_columns["example_id"]):
        windows_of[qid].append(window)

    predictions, null_odds, nbest = {}, {}, {}
    for qid, context in zip(example_columns["id"], example_columns["context"]):
        if not windows_of[qid]:
            raise ValueError(f"no features for example {qid!r}")
        candidates, null = [], None
        for window in windows_of[qid]:
            starts, ends = start_logits[window], end_logits[window]
            candidates += _window_candidates(starts, ends, feature_columns["offset_mapping"][window], context,
                                             n_best_size, max_answer_length)
            null_score = float(starts[CLS_INDEX] + ends[CLS_INDEX])
            if null is None or null_score < null["score"]:
                null = {"text": "", "start_logit": float(starts[CLS_INDEX]),
                        "end_logit": float(ends[CLS_INDEX]), "score": null_score}
        candidates = sorted(candidates, key=lambda c: c["score"], reverse=True)[:n_best_size]
        best = candidates[0] if candidates else None

        if version_2_with_negative:
            score_diff = null["score"] - best["score"] if best else math.inf
            null_odds[qid] = score_diff
            predictions[qid] = best["text"] if score_diff <= null_score_diff_threshold else ""
            candidates = sorted(candidates + [null], key=lambda c: c["score"], reverse=True)
        else:
            predictions[qid] = best["text"] if best else ""
        nbest[qid] = _with_probabilities(candidates)
    return predictions, null_odds, nbest


def _with_probabilities(candidates: Sequence[AnswerCandidate]) -> list[RankedAnswer]:
    if not candidates:
        return []
    scores = np.array([c["score"] for c in candidates])
    weights = np.exp(scores - scores.max())
    return [{**c, "probability": float(w)} for c, w in zip(candidates, weights / weights.sum())]
