"""Pairwise precision, recall and F1 of clusterings and of link sets."""

from __future__ import annotations

from itertools import combinations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canasta.linkage.metrics import Scores, pairwise_from_links, pairwise_scores

# Five records of two people: a, b and c are one, d and e the other (4 true pairs).
TRUTH = {"a": 1, "b": 1, "c": 1, "d": 2, "e": 2}


def test_a_hand_computed_clustering() -> None:
    # Predicted pairs a-b (right) and c-d (wrong).
    scores = pairwise_scores({"a": "x", "b": "x", "c": "y", "d": "y", "e": "z"}, TRUTH)
    assert (scores.tp, scores.predicted_pairs, scores.true_pairs) == (1, 2, 4)
    assert scores.precision == 0.5
    assert scores.recall == 0.25
    assert scores.f1 == pytest.approx(1 / 3)


def test_the_perfect_clustering_scores_one_whatever_its_labels() -> None:
    predicted = {record: 3 - person for record, person in TRUTH.items()}
    scores = pairwise_scores(predicted, TRUTH)
    assert (scores.precision, scores.recall, scores.f1) == (1.0, 1.0, 1.0)


def test_all_singletons_find_nothing_and_merge_nothing_wrongly() -> None:
    scores = pairwise_scores({record: record for record in TRUTH}, TRUTH)
    assert scores.predicted_pairs == 0
    assert (scores.precision, scores.recall, scores.f1) == (1.0, 0.0, 0.0)


def test_records_left_out_of_the_prediction_are_singletons() -> None:
    assert pairwise_scores({"a": 1, "b": 1}, TRUTH) == pairwise_scores(
        {"a": 1, "b": 1, "c": 2, "d": 3, "e": 4}, TRUTH
    )


def test_everything_in_one_cluster_has_low_precision_and_full_recall() -> None:
    scores = pairwise_scores(dict.fromkeys(TRUTH, 0), TRUTH)
    assert scores.predicted_pairs == 10
    assert scores.precision == 0.4
    assert scores.recall == 1.0
    assert scores.f1 == pytest.approx(2 * 0.4 / 1.4)


def test_without_any_true_pair_recall_is_one_by_convention() -> None:
    truth = {"a": 1, "b": 2}
    assert pairwise_scores({"a": 1, "b": 2}, truth).f1 == 1.0
    merged = pairwise_scores({"a": 1, "b": 1}, truth)
    assert (merged.precision, merged.recall, merged.f1) == (0.0, 1.0, 0.0)


def test_an_unknown_predicted_record_is_refused() -> None:
    with pytest.raises(ValueError, match="not in the truth"):
        pairwise_scores({"a": 1, "zz": 1}, TRUTH)


def test_links_are_scored_as_given_once_each() -> None:
    links = [("a", "b"), ("b", "a"), ("a", "b"), ("c", "d"), ("e", "e")]
    scores = pairwise_from_links(links, TRUTH)
    assert (scores.tp, scores.predicted_pairs, scores.true_pairs) == (1, 2, 4)
    assert scores.precision == 0.5


def test_links_are_not_closed_transitively() -> None:
    scores = pairwise_from_links([("a", "b"), ("b", "c")], TRUTH)
    assert (scores.tp, scores.predicted_pairs) == (2, 2)
    assert scores.recall == 0.5


def test_no_links_have_precision_one() -> None:
    scores = pairwise_from_links([], TRUTH)
    assert (scores.precision, scores.recall) == (1.0, 0.0)


def test_a_link_to_an_unknown_record_is_refused() -> None:
    with pytest.raises(ValueError, match="'zz'"):
        pairwise_from_links([("a", "zz")], TRUTH)


def test_impossible_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="true positives"):
        Scores.from_counts(tp=3, predicted_pairs=2, true_pairs=5)


# Small clusterings: record i has (predicted label, true label).
clusterings = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), max_size=14)


@given(clusterings)
def test_cluster_counting_equals_enumerating_every_pair(labels: list[tuple[int, int]]) -> None:
    predicted = {f"r{i}": p for i, (p, _) in enumerate(labels)}
    truth = {f"r{i}": t for i, (_, t) in enumerate(labels)}
    pairs = list(combinations(truth, 2))
    predicted_pairs = {(a, b) for a, b in pairs if predicted[a] == predicted[b]}
    true_pairs = {(a, b) for a, b in pairs if truth[a] == truth[b]}
    expected = Scores.from_counts(len(predicted_pairs & true_pairs), len(predicted_pairs), len(true_pairs))
    assert pairwise_scores(predicted, truth) == expected


@given(clusterings, st.lists(st.tuples(st.integers(0, 13), st.integers(0, 13)), max_size=30))
def test_link_scores_equal_enumerating_every_pair(
    labels: list[tuple[int, int]], raw_links: list[tuple[int, int]]
) -> None:
    truth = {f"r{i}": t for i, (_, t) in enumerate(labels)}
    links = [(f"r{a}", f"r{b}") for a, b in raw_links if a < len(labels) and b < len(labels)]
    pairs = list(combinations(truth, 2))
    linked = {(a, b) for a, b in pairs if (a, b) in links or (b, a) in links}
    true_pairs = {(a, b) for a, b in pairs if truth[a] == truth[b]}
    expected = Scores.from_counts(len(linked & true_pairs), len(linked), len(true_pairs))
    assert pairwise_from_links(links, truth) == expected
