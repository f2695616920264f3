"""RFC 6962 tree hashing against the published test data (transparency-dev/merkle `testonly`,
the same leaves and roots as certificate-transparency's tests), and canonical JSON's rules.
"""

from __future__ import annotations

import hashlib
import json
import struct

import pytest

from steward.audit.canonical import NotCanonicalizable, canonical_json
from steward.audit.merkle import extend_frontier, frontier_root, leaf_hash, node_hash, root_hash

LEAF_INPUTS = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
# Roots by tree size, from transparency-dev/merkle testonly/constants.go RootHashes().
ROOTS = {
    0: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}


def _leaves() -> list[bytes]:
    return [leaf_hash(bytes.fromhex(data)) for data in LEAF_INPUTS]


def test_empty_tree_hashes_to_sha256_of_nothing() -> None:
    assert root_hash([]).hex() == ROOTS[0]
    assert ROOTS[0] == hashlib.sha256(b"").hexdigest()


def test_leaf_hash_of_empty_input_matches_the_first_vector() -> None:
    assert leaf_hash(b"").hex() == ROOTS[1]


@pytest.mark.parametrize("size", sorted(ROOTS))
def test_root_of_first_n_leaves_matches_rfc6962_test_data(size: int) -> None:
    assert root_hash(_leaves()[:size]).hex() == ROOTS[size]


def test_interior_nodes_use_the_0x01_prefix() -> None:
    leaves = _leaves()
    assert root_hash(leaves[:2]) == node_hash(leaves[0], leaves[1])
    # Three leaves: the left subtree is the largest power of two (2), not a duplicated leaf.
    assert root_hash(leaves[:3]) == node_hash(node_hash(leaves[0], leaves[1]), leaves[2])


def test_canonical_json_sorts_keys_and_drops_whitespace() -> None:
    assert canonical_json({"b": [1, 2.0, {"z": None, "a": "é"}], "a": 1.5}) == (
        '{"a":1.5,"b":[1,2,{"a":"é","z":null}]}'.encode()
    )


def test_canonical_json_sorts_by_utf16_code_units() -> None:
    # U+1F600 is a surrogate pair (0xD83D...) so it sorts before U+FB01 in UTF-16 order.
    assert canonical_json({"\ufb01": 1, "\U0001f600": 2}) == '{"😀":2,"ﬁ":1}'.encode()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {1: "x"}, {"a": object()}])
def test_canonical_json_refuses_values_without_an_exact_form(value: object) -> None:
    with pytest.raises(NotCanonicalizable):
        canonical_json(value)


def test_canonical_json_handles_deep_nesting_without_recursion() -> None:
    value: object = "leaf"
    for _ in range(5000):
        value = [value]
    assert canonical_json(value).startswith(b"[[[[")


# RFC 8785 Appendix B: IEEE 754 bit patterns and the text JCS writes for them.
RFC8785_NUMBERS = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "expected"), RFC8785_NUMBERS)
def test_canonical_json_writes_numbers_as_rfc_8785_appendix_b(bits: str, expected: str) -> None:
    value = struct.unpack(">d", bytes.fromhex(bits))[0]
    assert canonical_json([value]) == f"[{expected}]".encode()


def test_canonical_json_matches_the_rfc_8785_sample_output() -> None:
    # RFC 8785 §3.2.2's example: 1E30, 4.50, 6, 2e-3, 0.000000000000000000000000001.
    parsed = json.loads(
        '{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001]}'
    )
    assert canonical_json(parsed) == b'{"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27]}'


def test_canonical_json_writes_large_integers_as_the_double_they_denote() -> None:
    assert (
        canonical_json([2**60, -(2**53), 10**21])
        == b"[1152921504606847000,-9007199254740992,1e+21]"
    )


def test_legacy_form_reproduces_entry_format_1_numbers() -> None:
    assert canonical_json([1e-7, 1e16, 0.5], legacy=True) == b"[1e-07,1e+16,0.5]"
    assert canonical_json([1e-7, 1e16, 0.5]) == b"[1e-7,10000000000000000,0.5]"


@pytest.mark.parametrize("size", [0, 1, 2, 3, 5, 8])
@pytest.mark.parametrize("appended", [0, 1, 3, 4, 7])
def test_extending_a_stored_frontier_gives_the_tree_head_of_all_leaves(
    size: int, appended: int
) -> None:
    leaves = [leaf_hash(bytes([n])) for n in range(size + appended)]
    frontier = extend_frontier(0, [], leaves[:size])
    assert len(frontier) == bin(size).count("1")
    assert frontier_root(extend_frontier(size, frontier, leaves[size:])) == root_hash(leaves)
