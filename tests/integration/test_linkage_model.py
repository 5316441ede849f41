"""Deduplication on a generated registry with known truth: duplicates found, household
members kept apart. Runs Splink on an in-memory DuckDB."""

from __future__ import annotations

import pytest

from canasta.linkage.generator import GeneratedRegistry, generate_registry
from canasta.linkage.metrics import pairwise_scores
from canasta.linkage.model import Deduplication, Thresholds, deduplicate

Found = tuple[GeneratedRegistry, Deduplication]


@pytest.fixture(scope="module")
def registry_and_result() -> Found:
    registry = generate_registry(3000, seed=5)
    return registry, deduplicate(registry.rows, Thresholds())


def test_automatic_merges_are_precise_and_find_most_duplicates(registry_and_result: Found) -> None:
    registry, result = registry_and_result
    scores = pairwise_scores(result.clusters, registry.truth)
    assert scores.precision >= 0.98, scores
    assert scores.f1 >= 0.95, scores


def test_household_members_are_not_merged(registry_and_result: Found) -> None:
    registry, result = registry_and_result
    together = result.clusters
    first = registry.first_registration
    merged_relatives = [
        relation
        for relation in registry.relations
        if relation.kind in ("siblings", "spouses", "parent_child", "namesake")
        and together[first[relation.a]] == together[first[relation.b]]
    ]
    assert merged_relatives == []
