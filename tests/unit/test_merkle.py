"""RFC 9162 Merkle trees: the reference roots, and proofs that verify and that fail."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from canasta.domain.merkle import (
    EMPTY_ROOT,
    Frontier,
    GrowingTree,
    consistency_path,
    consistency_proof,
    inclusion_path,
    inclusion_proof,
    leaf_hash,
    range_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

# The test vectors of Certificate Transparency's reference implementation (RFC 6962).
DATA = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657")]
DATA.append(bytes.fromhex("606162636465666768696a6b6c6d6e6f"))
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
LEAVES = [leaf_hash(d) for d in DATA]


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


@pytest.mark.parametrize("size", range(1, 9))
def test_the_reference_roots(size: int) -> None:
    assert root(LEAVES[:size]).hex() == ROOTS[size - 1]
    frontier = Frontier()
    for leaf in LEAVES[:size]:
        frontier.append(leaf)
    assert frontier.root().hex() == ROOTS[size - 1] and frontier.size == size


def test_the_empty_tree_and_domain_separation() -> None:
    assert root([]) == EMPTY_ROOT == Frontier().root()
    # A leaf is never mistaken for an interior node: the two prefixes differ.
    assert leaf_hash(LEAVES[0] + LEAVES[1]) != root(LEAVES[:2])


def leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 70), data=st.data())
def test_every_leaf_proves_its_place_and_nothing_else_does(size: int, data: st.DataObject) -> None:
    tree = leaves(size)
    head = root(tree)
    index = data.draw(st.integers(0, size - 1))
    proof = inclusion_proof(index, tree)
    assert verify_inclusion(index, size, tree[index], proof, head)
    other = data.draw(st.integers(0, size - 1))
    if other != index:
        assert not verify_inclusion(other, size, tree[index], proof, head)
        assert not verify_inclusion(index, size, tree[other], proof, head)
    # Against the head of the tree one leaf larger (what a checkpoint would sign), it fails.
    assert not verify_inclusion(index, size + 1, tree[index], proof, root(leaves(size + 1)))
    assert not verify_inclusion(index, size, tree[index], proof, leaf_hash(b"another root"))
    if proof:
        broken = list(proof)
        spot = data.draw(st.integers(0, len(proof) - 1))
        broken[spot] = leaf_hash(broken[spot])
        assert not verify_inclusion(index, size, tree[index], broken, head)
        assert not verify_inclusion(index, size, tree[index], proof[:-1], head)
        assert not verify_inclusion(index, size, tree[index], [*proof, proof[0]], head)


@settings(max_examples=60, deadline=None)
@given(new_size=st.integers(1, 70), data=st.data())
def test_an_older_tree_is_proved_a_prefix_and_a_rewritten_one_is_not(
    new_size: int, data: st.DataObject
) -> None:
    tree = leaves(new_size)
    old_size = data.draw(st.integers(1, new_size))
    old_root, new_root = root(tree[:old_size]), root(tree)
    proof = consistency_proof(old_size, tree)
    assert verify_consistency(old_size, new_size, old_root, new_root, proof)
    rewritten = list(tree)
    spot = data.draw(st.integers(0, old_size - 1))
    rewritten[spot] = leaf_hash(b"rewritten")
    assert not verify_consistency(old_size, new_size, root(rewritten[:old_size]), new_root, proof)
    if old_size < new_size:
        assert not verify_consistency(old_size, new_size, old_root, root(rewritten), proof)
        assert not verify_consistency(old_size, new_size, old_root, new_root, proof[:-1])
        assert not verify_consistency(old_size + 1, new_size, old_root, new_root, proof)
    assert not verify_consistency(new_size + 1, new_size, old_root, new_root, proof)


def test_out_of_range_requests_are_refused() -> None:
    with pytest.raises(ValueError, match="not in a tree of 3"):
        inclusion_proof(3, leaves(3))
    with pytest.raises(ValueError, match="no consistency proof"):
        consistency_proof(0, leaves(3))
    assert not verify_inclusion(0, 0, LEAVES[0], [], EMPTY_ROOT)


def test_every_pair_of_small_sizes_and_every_leaf() -> None:
    tree = leaves(33)
    for new_size in range(1, 34):
        new_root = root(tree[:new_size])
        for index in range(new_size):
            assert verify_inclusion(
                index, new_size, tree[index], inclusion_proof(index, tree[:new_size]), new_root
            )
        for old_size in range(1, new_size + 1):
            proof = consistency_proof(old_size, tree[:new_size])
            assert verify_consistency(old_size, new_size, root(tree[:old_size]), new_root, proof)


def _all_nodes(leaves: list[bytes]) -> dict[tuple[int, int], bytes]:
    """Every complete subtree of the tree over ``leaves``, computed the slow way."""
    found = {}
    height = 0
    while (1 << height) <= len(leaves):
        for index in range(len(leaves) >> height):
            found[(height, index)] = root(leaves[index << height : (index + 1) << height])
        height += 1
    return found


@settings(max_examples=60)
@given(size=st.integers(1, 90), data=st.data())
def test_proofs_from_complete_subtrees_equal_proofs_from_all_leaves(size: int, data: st.DataObject) -> None:
    leaves = _leaves(size)
    nodes = _all_nodes(leaves)
    index = data.draw(st.integers(0, size - 1))
    assert inclusion_path(index, size, lambda h, i: nodes[(h, i)]) == inclusion_proof(index, leaves)
    old = data.draw(st.integers(1, size))
    assert consistency_path(old, size, lambda h, i: nodes[(h, i)]) == consistency_proof(old, leaves)


@settings(max_examples=60)
@given(old=st.integers(0, 80), grown=st.integers(1, 40))
def test_a_grown_tree_proves_its_new_leaves_from_the_old_frontier_alone(old: int, grown: int) -> None:
    leaves = _leaves(old + grown)
    frontier = Frontier()
    for leaf in leaves[:old]:
        frontier.append(leaf)
    stored = Frontier.from_bytes(old, frontier.to_bytes())
    assert stored == frontier
    tree = GrowingTree(stored, leaves[old:])
    for index in range(old, old + grown):
        assert tree.inclusion(index) == inclusion_proof(index, leaves)
    assert GrowingTree(stored, leaves[old:]).inclusions(old, old + grown) == [
        inclusion_proof(index, leaves) for index in range(old, old + grown)
    ]
    if old:
        assert consistency_path(old, old + grown, tree.node) == consistency_proof(old, leaves)
    for leaf in leaves[old:]:
        frontier.append(leaf)
    assert range_hash(0, old + grown, tree.node) == frontier.root() == root(leaves)


def test_a_grown_tree_does_not_invent_old_subtrees() -> None:
    leaves = _leaves(6)
    frontier = Frontier()
    for leaf in leaves[:5]:
        frontier.append(leaf)
    tree = GrowingTree(frontier, leaves[5:])
    with pytest.raises(ValueError, match="below the frontier"):
        tree.node(0, 1)  # an old leaf: only the peaks of the old tree are known
    with pytest.raises(ValueError, match="not complete"):
        tree.node(1, 3)
    with pytest.raises(ValueError, match="holds 2 hashes"):
        Frontier.from_bytes(5, b"\x00" * 32)
