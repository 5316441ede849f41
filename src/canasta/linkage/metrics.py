"""Pairwise precision, recall and F1 of a record linkage, against labelled truth.

A linkage is judged on *pairs of records*: a pair is predicted when both records are put in
the same cluster (or, for ``pairwise_from_links``, when the pair itself is a link), and true
when both records belong to the same person. Then

* precision = true positive pairs / predicted pairs (how many merges are right),
* recall = true positive pairs / true pairs (how many duplicates were found),
* F1 = their harmonic mean.

Clusterings are scored without enumerating the n² pairs: a cluster of k records holds
C(k, 2) pairs, and the true positives are the pairs inside each (predicted cluster ∩ true
cluster) intersection, so counting cluster sizes is enough.

Conventions for the empty cases: with no predicted pairs precision is 1.0 (no merge was
made, so none was wrong); with no true pairs recall is 1.0 (there was nothing to find). F1
is 0.0 when precision and recall are both 0.0. A linker that merges nothing thus scores
precision 1.0 and recall 0.0 on data that has duplicates.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Scores:
    """Pair counts and the rates derived from them."""

    #: Pairs predicted together that are the same person.
    tp: int
    #: Pairs predicted together (same predicted cluster, or linked).
    predicted_pairs: int
    #: Pairs of records of the same person.
    true_pairs: int
    precision: float
    recall: float
    f1: float

    @classmethod
    def from_counts(cls, tp: int, predicted_pairs: int, true_pairs: int) -> Scores:
        """Rates from the three counts, with the conventions in the module docstring."""
        if not 0 <= tp <= min(predicted_pairs, true_pairs):
            raise ValueError(
                f"true positives ({tp}) must lie between 0 and both predicted ({predicted_pairs}) "
                f"and true ({true_pairs}) pairs"
            )
        precision = tp / predicted_pairs if predicted_pairs else 1.0
        recall = tp / true_pairs if true_pairs else 1.0
        total = precision + recall
        f1 = 2 * precision * recall / total if total else 0.0
        return cls(tp, predicted_pairs, true_pairs, precision, recall, f1)


def pairwise_scores(predicted: Mapping[str, Hashable], truth: Mapping[str, Hashable]) -> Scores:
    """Score a clustering: ``predicted`` and ``truth`` map record ids to cluster labels.

    Every predicted record must be in ``truth`` (``ValueError`` otherwise); a record in
    ``truth`` but absent from ``predicted`` counts as a predicted singleton, so a linker may
    leave out the records it did not cluster. Labels only need to be hashable, and the two
    mappings' labels are unrelated (label 1 in one is not label 1 in the other).
    """
    unknown = predicted.keys() - truth.keys()
    if unknown:
        raise ValueError(f"{len(unknown)} predicted records are not in the truth, e.g. {min(unknown)!r}")
    predicted_sizes = Counter(predicted.values())
    true_sizes = Counter(truth.values())
    both = Counter((label, truth[record]) for record, label in predicted.items())
    return Scores.from_counts(
        tp=sum(_pairs(k) for k in both.values()),
        predicted_pairs=sum(_pairs(k) for k in predicted_sizes.values()),
        true_pairs=sum(_pairs(k) for k in true_sizes.values()),
    )


def pairwise_from_links(links: Iterable[tuple[str, str]], truth: Mapping[str, Hashable]) -> Scores:
    """Score a set of matched pairs as they are, e.g. every pair above a match threshold.

    Links are unordered and counted once however often or in whichever order they are
    given; a link of a record to itself is ignored. Links are *not* closed transitively:
    a→b and b→c do not predict a→c (cluster them and use ``pairwise_scores`` for that).
    Both records of every link must be in ``truth`` (``ValueError`` otherwise).
    """
    pairs: set[tuple[str, str]] = set()
    for a, b in links:
        for record in (a, b):
            if record not in truth:
                raise ValueError(f"linked record {record!r} is not in the truth")
        if a != b:
            pairs.add((a, b) if a < b else (b, a))
    return Scores.from_counts(
        tp=sum(1 for a, b in pairs if truth[a] == truth[b]),
        predicted_pairs=len(pairs),
        true_pairs=sum(_pairs(k) for k in Counter(truth.values()).values()),
    )


def _pairs(k: int) -> int:
    """C(k, 2): the pairs among k records."""
    return k * (k - 1) // 2
