"""Deduplication of registrations with Splink on DuckDB (in memory).

``deduplicate(rows)`` normalises the registrations (``canasta.linkage.normalise``), scores
the candidate pairs that blocking admits with a Fellegi–Sunter model whose parameters are
estimated on the data itself (u by random sampling, m by expectation maximisation: no
labels), and returns the scored pairs, the clusters of pairs at or above the upper
threshold (merged automatically) and the review queue (pairs between the two thresholds
that the automatic clusters did not already join).

Household members are the hard negatives: they share address, phone and family names.
So the model judges *who* a registration is by the person's own fields only:

* given names are decisive: exact (with a term-frequency adjustment, "maría" is weak
  evidence, "ximena" strong), one edit apart, a compound shortened to its first name,
  the same first name with a *different* second one (a sibling's pattern: "María José" and
  "María Paz"), or different (a twin, a spouse, a sibling: a large negative weight);
* the date of birth: exact, day and month swapped, one edit apart (a typed digit), the
  same year, or different (a parent and child namesake: a large negative weight);
* family names: both in order, swapped, one missing, one edit apart each, only the first
  shared (a parent and child), or different;
* sex.

One pattern no field can settle: two registrations of one household with one birth date
whose given names differ by more than a typo are a twin pair or a re-registration under a
shortened compound name. Such a pair is never merged automatically; it goes to the review
queue whatever its score (on 10,000 generated people: no wrong automatic merge, at the cost
of about 100 more pairs to review).

Address and phone are *not* compared when ``household_fields`` is ``"block"`` (the
default): members of one household agree on them, and a model that counts the agreement as
evidence merges whole households. They still serve blocking (the same phone brings a pair
into view). With ``"compare"`` they are compared like any other field, which suits data
where an address is personal (FEBRL) and shows, on household data, why it is not used.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

from canasta.linkage.normalise import normalise_registration

HouseholdFields = Literal["block", "compare"]


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Match probabilities: pairs at or above ``upper`` are merged automatically, pairs
    from ``lower`` up to ``upper`` go to the review queue, the rest are kept apart."""

    upper: float = 0.95
    lower: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.lower <= self.upper < 1.0:
            raise ValueError("thresholds must satisfy 0 < lower <= upper < 1")


class TooFewToEstimate(ValueError):
    """The registrations give the model too few pairs to estimate its parameters from."""


@dataclass(frozen=True, slots=True)
class FieldEvidence:
    """How one compared field of a pair came out: the comparison level it reached and the
    match weight (log2 of the Bayes factor, term-frequency adjustment included) it added."""

    field: str
    level: str
    weight: float


@dataclass(frozen=True, slots=True)
class ScoredPair:
    left: str
    right: str
    match_weight: float
    match_probability: float
    evidence: tuple[FieldEvidence, ...] = ()
    #: Why a pair above the upper threshold was still sent to a person (else "").
    held: str = ""


@dataclass(frozen=True, slots=True)
class Deduplication:
    """What ``deduplicate`` found."""

    thresholds: Thresholds
    #: Candidate pairs that blocking admitted (every one was scored); -1 when not counted.
    blocked_pair_count: int
    #: Scored pairs with match probability at or above ``thresholds.lower``.
    pairs: tuple[ScoredPair, ...]
    #: registration id → cluster id, from the pairs at or above ``thresholds.upper``
    #: (connected components); every registration is in a cluster, alone or not.
    clusters: dict[str, str]
    #: Pairs between the thresholds whose records are not already in one cluster.
    review: tuple[ScoredPair, ...]
    #: Every blocked pair, when asked for (``keep_blocked_pairs``), to measure blocking.
    blocked_pairs: tuple[tuple[str, str], ...] = field(default=())
    #: The trained model (Splink's settings dictionary): stored with a run, it scores the
    #: registrations of later incremental runs without training again.
    settings: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def auto_links(self) -> tuple[ScoredPair, ...]:
        return tuple(p for p in self.pairs if p.match_probability >= self.thresholds.upper)


def _level(sql: str, label: str, **options: Any) -> dict[str, Any]:
    return {"sql_condition": sql, "label_for_charts": label, **options}


def _null(*columns: str) -> dict[str, Any]:
    sql = " OR ".join(f'"{c}_l" IS NULL OR "{c}_r" IS NULL' for c in columns)
    return _level(sql, "null", is_null_level=True)


def _else() -> dict[str, Any]:
    return _level("ELSE", "else")


def given_names_comparison() -> dict[str, Any]:
    return {
        "output_column_name": "given_names",
        "comparison_levels": [
            _null("given_names"),
            _level(
                "given_names_l = given_names_r",
                "exact",
                tf_adjustment_column="given_names",
                tf_adjustment_weight=1.0,
            ),
            _level("damerau_levenshtein(given_names_l, given_names_r) <= 1", "one edit"),
            _level(
                "first_given_name_l = first_given_name_r"
                " AND (other_given_names_l IS NULL OR other_given_names_r IS NULL)",
                "shortened compound",
                tf_adjustment_column="first_given_name",
                tf_adjustment_weight=0.5,
            ),
            _level(
                "(other_given_names_l IS NULL OR other_given_names_r IS NULL)"
                " AND damerau_levenshtein(first_given_name_l, first_given_name_r) <= 1",
                "shortened compound, one edit",
            ),
            _level(
                "jaro_winkler_similarity(first_given_name_l, first_given_name_r) >= 0.9"
                " AND least(length(first_given_name_l), length(first_given_name_r)) >= 5",
                "first names similar",
            ),
            _level("first_given_name_l = first_given_name_r", "same first, other second"),
            _else(),
        ],
    }


def _close(a: str, b: str) -> str:
    return f"damerau_levenshtein({a}, {b}) <= 1"


def _close_or_missing(a: str, b: str) -> str:
    return f"({a} IS NULL OR {b} IS NULL OR {_close(a, b)})"


#: Both family names within one edit, in order or swapped; a missing second name agrees.
_FAMILY_NAMES_CLOSE = (
    f"({_close('family_name_l', 'family_name_r')}"
    f" AND {_close_or_missing('second_family_name_l', 'second_family_name_r')})"
    f" OR ({_close('family_name_l', 'second_family_name_r')}"
    f" AND {_close_or_missing('second_family_name_l', 'family_name_r')})"
    f" OR (second_family_name_l IS NULL AND {_close('family_name_l', 'second_family_name_r')})"
    f" OR (second_family_name_r IS NULL AND {_close('second_family_name_l', 'family_name_r')})"
)


def family_names_comparison() -> dict[str, Any]:
    return {
        "output_column_name": "family_names",
        "comparison_levels": [
            _null("family_names_sorted"),
            _level(
                "family_name_l = family_name_r AND second_family_name_l = second_family_name_r",
                "both exact",
                tf_adjustment_column="family_names_sorted",
                tf_adjustment_weight=0.5,
            ),
            _level(
                "family_names_sorted_l = family_names_sorted_r",
                "same names (swapped)",
            ),
            _level(
                "(second_family_name_l IS NULL OR second_family_name_r IS NULL)"
                " AND (family_name_l IN (family_name_r, second_family_name_r)"
                " OR family_name_r IN (family_name_l, second_family_name_l))",
                "one missing, other shared",
                tf_adjustment_column="family_name",
                tf_adjustment_weight=0.5,
            ),
            _level(_FAMILY_NAMES_CLOSE, "within one edit each, in order or swapped"),
            _level(
                "jaro_winkler_similarity(family_name_l, family_name_r) >= 0.9"
                " AND (second_family_name_l IS NULL OR second_family_name_r IS NULL"
                " OR jaro_winkler_similarity(second_family_name_l, second_family_name_r) >= 0.9)",
                "similar",
            ),
            _level("family_name_l = family_name_r", "only first shared"),
            _else(),
        ],
    }


def date_of_birth_comparison() -> dict[str, Any]:
    swapped = (
        "substr(date_of_birth_l, 1, 4) = substr(date_of_birth_r, 1, 4)"
        " AND substr(date_of_birth_l, 6, 2) = substr(date_of_birth_r, 9, 2)"
        " AND substr(date_of_birth_l, 9, 2) = substr(date_of_birth_r, 6, 2)"
    )
    return {
        "output_column_name": "date_of_birth",
        "comparison_levels": [
            _null("date_of_birth"),
            _level("date_of_birth_l = date_of_birth_r", "exact"),
            _level(swapped, "day and month swapped"),
            _level("damerau_levenshtein(date_of_birth_l, date_of_birth_r) <= 1", "one edit"),
            _level("birth_year_l = birth_year_r", "same year"),
            _else(),
        ],
    }


def sex_comparison() -> dict[str, Any]:
    return {
        "output_column_name": "sex",
        "comparison_levels": [_null("sex"), _level("sex_l = sex_r", "exact"), _else()],
    }


def address_comparison() -> dict[str, Any]:
    return {
        "output_column_name": "address",
        "comparison_levels": [
            _null("address"),
            _level("address_l = address_r", "exact", tf_adjustment_column="address"),
            _level("jaro_winkler_similarity(address_l, address_r) >= 0.9", "similar"),
            _level("municipality_l = municipality_r", "same municipality"),
            _else(),
        ],
    }


def phone_comparison() -> dict[str, Any]:
    return {
        "output_column_name": "phone",
        "comparison_levels": [_null("phone"), _level("phone_l = phone_r", "exact"), _else()],
    }


#: Candidate pairs: any one rule suffices (Splink scores each pair once). Each rule keys on
#: the date of birth or on a part of it that survives one kind of error, so the pairs grow
#: with the number of people born on one day, not with the number called "María González":
#: on 123,040 generated registrations these admit 368,752 pairs and 99.75 % of the true
#: pairs, where keys on name alone ("first given name and family name") admitted 28 million.
BLOCKING_RULES = (
    ("date_of_birth", "family_key"),
    # the family names mistyped or swapped (sex too: rules after the first are backups)
    ("date_of_birth", "given_initial", "sex_key"),
    # one error in the date: day and month exchanged, a mistyped day, a mistyped year
    ("first_given_name", "family_key", "birth_date_unordered"),
    ("first_given_name", "family_key", "birth_month", "sex_key"),
    ("first_given_name", "family_key", "birth_monthday", "sex_key"),
    # a household's members share it; a re-registration at home with a new birth date
    ("address",),
)


def _rule_sql(rule: tuple[str, ...]) -> str:
    return " AND ".join(f"l.{column} = r.{column}" for column in rule)


def settings(household_fields: HouseholdFields = "block") -> dict[str, Any]:
    """Splink settings (untrained) for deduplicating normalised registrations."""

    comparisons = [
        given_names_comparison(),
        family_names_comparison(),
        date_of_birth_comparison(),
        sex_comparison(),
    ]
    if household_fields == "compare":
        comparisons += [address_comparison(), phone_comparison()]
    return {
        "link_type": "dedupe_only",
        "unique_id_column_name": "unique_id",
        "comparisons": comparisons,
        "blocking_rules_to_generate_predictions": [_rule_sql(rule) for rule in BLOCKING_RULES],
        "retain_matching_columns": False,
        "retain_intermediate_calculation_columns": False,
        "max_iterations": 40,
    }


Progress = Callable[[str], None]

#: Pairs sampled for the u probabilities, and at most for each EM pass: enough for stable
#: estimates, and bounded, so training costs the same on a district and on a country.
TRAINING_PAIRS = 2e6


def deduplicate(
    rows: Iterable[Mapping[str, str]],
    thresholds: Thresholds | None = None,
    *,
    household_fields: HouseholdFields = "block",
    keep_blocked_pairs: bool = False,
    prior_recall: float = 0.7,
    seed: int = 1,
    model: Mapping[str, Any] | None = None,
    new: Collection[str] | None = None,
    progress: Progress | None = None,
) -> Deduplication:
    """Deduplicate registrations (the registration format, all values strings).

    Without ``model`` the parameters are estimated on the rows themselves. The prior
    (probability that two random records match) is the share of pairs that agree exactly on
    given names, first family name and date of birth, divided by ``prior_recall``: the share
    of true pairs expected to agree so (lower for noisier data).

    With ``model`` (the ``settings`` of an earlier result) nothing is estimated, and with
    ``new`` only pairs with at least one registration in ``new`` are scored: the
    incremental case, where new registrations are matched against the registry and each
    other. ``progress`` is told the name of each stage as it starts.
    """
    from splink import DuckDBAPI, Linker
    from splink.internals.exceptions import SplinkException

    say = progress or (lambda _stage: None)
    thresholds = thresholds or Thresholds()
    say("normalising")
    fresh = set(new) if new is not None else None
    records = []
    for row in rows:
        record: dict[str, Any] = normalise_registration(row)
        if fresh is not None:
            record["is_new"] = record["unique_id"] in fresh
        records.append(record)
    if fresh is not None and not any(r["is_new"] for r in records):
        by_id_only = {str(r["unique_id"]) for r in records}
        return Deduplication(thresholds, 0, (), {i: i for i in by_id_only}, (), settings=dict(model or {}))
    db_api = DuckDBAPI()
    chosen = settings(household_fields) if model is None else dict(model)
    chosen["retain_intermediate_calculation_columns"] = True
    chosen["retain_matching_columns"] = True
    if fresh is not None:
        chosen["blocking_rules_to_generate_predictions"] = [
            _rule_sql(rule) + " AND (l.is_new OR r.is_new)" for rule in BLOCKING_RULES
        ]
    # Splink warns about comparison levels a training round did not observe; the estimates
    # fall back to defaults for them, which is expected here, so only errors are shown.
    linker = Linker(db_api.register(records), chosen, log_level=logging.ERROR)
    if model is None:
        say("estimating the model")
        try:
            _train(linker, prior_recall, seed)
        except SplinkException as failed:
            raise TooFewToEstimate(
                f"the model cannot be estimated from these {len(records):,} registrations: "
                f"{str(failed).splitlines()[0].split('.  ')[0].rstrip('.')}"
            ) from None
    trained = linker.misc.save_model_to_json()
    trained["retain_intermediate_calculation_columns"] = False
    trained["blocking_rules_to_generate_predictions"] = settings(household_fields)[
        "blocking_rules_to_generate_predictions"
    ]
    say("scoring candidate pairs")
    connection = db_api._con
    blocked: tuple[tuple[str, str], ...] = ()
    blocked_pair_count = -1
    if keep_blocked_pairs:
        every = linker.inference.predict()
        blocked = tuple(
            connection.execute(f"SELECT unique_id_l, unique_id_r FROM {every.physical_name}").fetchall()  # noqa: S608
        )
        blocked_pair_count = len(blocked)
    predictions = linker.inference.predict(threshold_match_probability=thresholds.lower)
    levels = _level_labels(trained)
    names = list(levels)
    columns = ", ".join(
        f"gamma_{n}, mw_{n}, {f'mw_tf_adj_{n}' if _has_tf(trained, n) else '0.0'}" for n in names
    )
    pairs = []
    for scored in connection.execute(
        f"SELECT unique_id_l, unique_id_r, match_weight, match_probability, {columns}"  # noqa: S608
        f" FROM {predictions.physical_name} ORDER BY match_probability DESC, unique_id_l, unique_id_r"
    ).fetchall():
        evidence = tuple(
            FieldEvidence(
                n, levels[n].get(int(scored[4 + 3 * i]), "?"), _weight(scored[5 + 3 * i], scored[6 + 3 * i])
            )
            for i, n in enumerate(names)
        )
        pairs.append(ScoredPair(str(scored[0]), str(scored[1]), float(scored[2]), float(scored[3]), evidence))
    say("clustering")
    by_id = {str(record["unique_id"]): record for record in records}

    def twin_like(pair: ScoredPair) -> bool:
        """Two registrations of one household and one birth date whose given names differ
        by more than a typo: a twin ("María" and "María Teresa") and a re-registration under
        a shortened name look alike, so a person decides."""
        left, right = by_id[pair.left], by_id[pair.right]
        return (
            bool(left["household_ref"])
            and left["household_ref"] == right["household_ref"]
            and left["date_of_birth"] == right["date_of_birth"]
            and _edits(str(left["given_names"] or ""), str(right["given_names"] or "")) > 2
        )

    pairs = [
        replace(p, held="twin-like") if p.match_probability >= thresholds.upper and twin_like(p) else p
        for p in pairs
    ]
    automatic = [p for p in pairs if p.match_probability >= thresholds.upper and not p.held]
    clusters, withheld = clusters_kept_apart(
        by_id, automatic, [(p.left, p.right) for p in pairs if p.held], str
    )
    held_back = {(p.left, p.right) for p in withheld}
    pairs = [replace(p, held=JOINS_APART) if (p.left, p.right) in held_back else p for p in pairs]
    review = tuple(
        p
        for p in pairs
        if (p.match_probability < thresholds.upper or p.held) and clusters[p.left] != clusters[p.right]
    )
    return Deduplication(
        thresholds=thresholds,
        blocked_pair_count=blocked_pair_count,
        pairs=tuple(pairs),
        clusters=clusters,
        review=review,
        blocked_pairs=blocked,
        settings=trained,
    )


def _train(linker: Any, prior_recall: float, seed: int) -> None:
    """Estimate the model's parameters on the registrations themselves (no labels)."""
    from splink import block_on

    training = linker.training
    training.estimate_probability_two_random_records_match(
        [block_on("given_names", "family_name", "date_of_birth")], recall=prior_recall
    )
    training.estimate_u_using_random_sampling(max_pairs=TRAINING_PAIRS, seed=seed)
    training.estimate_parameters_using_expectation_maximisation(
        block_on("date_of_birth"), record_sample_proportion=1.0, max_pairs=TRAINING_PAIRS
    )
    # The date of birth and sex are learnt among pairs with one first name and family
    # name at one address: the same person registered twice, or a parent and child
    # namesake, whom the date must tell apart. (Keyed on names alone, the pairs are
    # mostly strangers called "María González"; on 123,040 registrations EM then took
    # an exact date for weak evidence and recall fell to 0.14.)
    training.estimate_parameters_using_expectation_maximisation(
        block_on("first_given_name", "family_name", "address"),
        record_sample_proportion=1.0,
        max_pairs=TRAINING_PAIRS,
    )


def _level_labels(model: Mapping[str, Any]) -> dict[str, dict[int, str]]:
    """comparison name → gamma value → level label, as Splink numbers levels: the null
    level is -1, the others count down from the first to 0 for the last."""
    found: dict[str, dict[int, str]] = {}
    for comparison in model["comparisons"]:
        levels = comparison["comparison_levels"]
        ordinary = [lv for lv in levels if not lv.get("is_null_level")]
        labels = {-1: "missing"}
        for i, level in enumerate(ordinary):
            labels[len(ordinary) - 1 - i] = str(level.get("label_for_charts", i))
        found[comparison["output_column_name"]] = labels
    return found


def _has_tf(model: Mapping[str, Any], name: str) -> bool:
    comparison = next(c for c in model["comparisons"] if c["output_column_name"] == name)
    return any(lv.get("tf_adjustment_column") for lv in comparison["comparison_levels"])


def _weight(weight: float | None, adjustment: float | None) -> float:
    """A field's match weight with its term-frequency adjustment (either may be NULL)."""
    return round((weight or 0.0) + (adjustment or 0.0), 3)


def _edits(a: str, b: str) -> int:
    """Levenshtein distance (the few names compared here are short)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


K = TypeVar("K", str, int)

#: Why a pair above the upper threshold was withheld: merging it would join two
#: registrations that must stay apart (a twin-like pair, or a pair a person decided).
JOINS_APART = "its cluster would join a pair held apart"


def clusters_kept_apart(
    ids: Iterable[K],
    links: Iterable[ScoredPair],
    apart: Iterable[tuple[K, K]],
    key: Callable[[str], K],
) -> tuple[dict[K, K], list[ScoredPair]]:
    """Clusters of ``links`` (id → the smallest id of its cluster) that never hold both
    sides of a pair in ``apart``: links are taken strongest first, and one that would join
    two clusters holding such a pair is withheld (returned, for a person to decide) instead.
    ``key`` turns a link's registration ids (strings) into the ids' type."""
    parent: dict[K, K] = {i: i for i in ids}
    members: dict[K, set[K]] = {i: {i} for i in parent}
    kept_from: dict[K, set[K]] = defaultdict(set)
    for a, b in apart:
        kept_from[a].add(b)
        kept_from[b].add(a)

    def root(i: K) -> K:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    withheld: list[ScoredPair] = []
    for link in sorted(links, key=lambda p: (-p.match_probability, p.left, p.right)):
        a, b = root(key(link.left)), root(key(link.right))
        if a == b:
            continue
        small, large = sorted((members[a], members[b]), key=len)
        if any(kept_from[x] & large for x in small if x in kept_from):
            withheld.append(link)
            continue
        low, high = min(a, b), max(a, b)
        parent[high] = low
        members[low] |= members.pop(high)
    return {i: root(i) for i in parent}, withheld
