"""Sealing a beneficiary's identity: each column opens only in its own row and place."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tierspayant.security.crypto import BlindIndexer, DecryptionError, FieldCipher, new_data_keys
from tierspayant.security.identity import (
    SEALED_COLUMNS,
    BeneficiaryIdentity,
    BulkSealer,
    column_aad,
    family_index,
    member_index,
    nir_index,
    open_column,
    seal_identity,
)

KEYS = new_data_keys(1)
CIPHER = FieldCipher(KEYS)
INDEXER = BlindIndexer(KEYS)
PERSON = BeneficiaryIdentity("279042854094418", "A-12345", date(1979, 4, 16), "Durand", "Zoé")


def _plain(identity: BeneficiaryIdentity) -> dict[str, str]:
    return {
        "nir": identity.nir,
        "member_number": identity.member_number,
        "birth_date": identity.birth_date.isoformat(),
        "last_name": identity.last_name,
        "first_name": identity.first_name,
    }


@settings(max_examples=50)
@given(
    insurer_id=st.integers(min_value=1, max_value=10**6),
    last_name=st.text(min_size=1, max_size=40),
    first_name=st.text(min_size=1, max_size=40),
)
def test_given_a_sealed_identity_then_each_column_opens_with_its_own_associated_data(
    insurer_id: int, last_name: str, first_name: str
) -> None:
    person = BeneficiaryIdentity(
        PERSON.nir, PERSON.member_number, PERSON.birth_date, last_name, first_name
    )
    idx = nir_index(INDEXER, person.nir, 1)
    sealed = seal_identity(CIPHER, insurer_id, idx, person)
    assert set(sealed) == {f"{c}_ct" for c in SEALED_COLUMNS}
    for column, value in _plain(person).items():
        blob = sealed[f"{column}_ct"]
        assert CIPHER.decrypt(blob, column_aad(insurer_id, idx, column)) == value
        assert open_column(CIPHER, insurer_id, idx, column, blob) == value


def test_given_a_column_moved_to_another_place_then_it_does_not_open() -> None:
    idx = nir_index(INDEXER, PERSON.nir, 1)
    other = nir_index(INDEXER, PERSON.nir, 2)
    sealed = seal_identity(CIPHER, 7, idx, PERSON)
    with pytest.raises(DecryptionError):
        open_column(CIPHER, 7, idx, "first_name", sealed["last_name_ct"])
    with pytest.raises(DecryptionError):
        open_column(CIPHER, 7, other, "last_name", sealed["last_name_ct"])
    with pytest.raises(DecryptionError):
        open_column(CIPHER, 8, idx, "last_name", sealed["last_name_ct"])


def test_given_two_seals_of_the_same_identity_then_nonces_differ() -> None:
    idx = nir_index(INDEXER, PERSON.nir, 1)
    one, two = seal_identity(CIPHER, 1, idx, PERSON), seal_identity(CIPHER, 1, idx, PERSON)
    blobs = list(one.values()) + list(two.values())
    assert len({b[5:17] for b in blobs}) == len(blobs)  # header: format byte + version
    assert all(one[k] != two[k] for k in one)


_PEOPLE = st.lists(
    st.tuples(
        st.from_regex(r"[12][0-9]{4}(?:[0-9]{2}|2[AB])[0-9]{8}", fullmatch=True),
        st.integers(min_value=1, max_value=9),
        st.text(min_size=1, max_size=30),
        st.dates(),
        st.text(min_size=1, max_size=40),
        st.text(min_size=1, max_size=40),
    ),
    max_size=8,
)


@settings(max_examples=60)
@given(insurer_id=st.integers(min_value=1, max_value=10**9), people=_PEOPLE)
def test_given_people_sealed_in_bulk_then_indexes_and_columns_match_the_one_by_one_path(
    insurer_id: int, people: list[tuple[str, int, str, date, str, str]]
) -> None:
    sealed = BulkSealer(KEYS, insurer_id).seal_many(people)
    assert len(sealed) == len(people)
    for (nir, rank, member, birth, last, first), row in zip(people, sealed, strict=True):
        idx = nir_index(INDEXER, nir, rank)
        assert row[:3] == (idx, member_index(INDEXER, member, birth), family_index(INDEXER, member))
        person = BeneficiaryIdentity(nir, member, birth, last, first)
        for column, blob in zip(SEALED_COLUMNS, row[3:], strict=True):
            # Same layout and associated data as seal_identity: the lookup side opens it.
            assert open_column(CIPHER, insurer_id, idx, column, blob) == _plain(person)[column]
            assert len(blob) == len(seal_identity(CIPHER, insurer_id, idx, person)[f"{column}_ct"])
        with pytest.raises(DecryptionError):
            open_column(CIPHER, insurer_id + 1, idx, "nir", row[3])
    nonces = [blob[5:17] for row in sealed for blob in row[3:]]
    assert len(set(nonces)) == len(nonces)
