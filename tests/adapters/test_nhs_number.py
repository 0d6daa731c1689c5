"""adapters.nhs_number: examples plus hypothesis properties."""

from __future__ import annotations

import random
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters import nhs_number
from adapters.nhs_number import InvalidNHSNumber

digits = st.text(alphabet=string.digits, min_size=10, max_size=10)
valid = st.integers(min_value=0, max_value=2**32).map(
    lambda seed: nhs_number.synthetic(random.Random(seed))
)
separators = st.lists(st.sampled_from([" ", "-", "  ", " - "]), min_size=9, max_size=9)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("9434765919", True),
        ("943 476 5919", True),
        ("943-476-5919", True),
        ("9434765918", False),
        ("943476591", False),
        ("94347659190", False),
        ("943476591O", False),
        ("", False),
        (None, False),
    ],
)
def test_examples(value: str | None, ok: bool) -> None:
    assert nhs_number.is_valid(value) is ok


def test_check_digit_ten_means_never_issued() -> None:
    # 10 * 0 + ... chosen so that 11 - (total % 11) == 10
    first_nine = next(
        f"{n:09d}" for n in range(10**6) if nhs_number.check_digit(f"{n:09d}") is None
    )
    assert not any(nhs_number.is_valid(first_nine + str(d)) for d in range(10))
    with pytest.raises(ValueError):
        nhs_number.check_digit("12345678")


@given(valid)
def test_synthetic_is_valid_and_in_the_test_range(number: str) -> None:
    assert nhs_number.is_valid(number)
    assert number.startswith("999")
    assert len(number) == 10 and number.isdigit()


@given(valid, separators)
def test_normalise_undoes_any_separators(number: str, seps: list[str]) -> None:
    spaced = "".join(d + s for d, s in zip(number, [*seps, ""], strict=False))
    assert nhs_number.normalise(f"  {spaced} ") == number
    assert nhs_number.parse(spaced) == number


@given(valid)
def test_format_and_parse_round_trip(number: str) -> None:
    formatted = nhs_number.format_nhs(number)
    assert formatted == f"{number[:3]} {number[3:6]} {number[6:]}"
    assert nhs_number.parse(formatted) == number
    assert nhs_number.normalise(formatted) == number
    assert nhs_number.format_nhs(formatted) == formatted


@given(valid, st.integers(min_value=0, max_value=9), st.integers(min_value=1, max_value=9))
def test_any_single_digit_change_is_detected(number: str, position: int, delta: int) -> None:
    changed = int(number[position]) + delta
    if changed > 9:
        changed -= 10
    mutated = number[:position] + str(changed) + number[position + 1 :]
    assert mutated != number
    assert not nhs_number.is_valid(mutated)


@given(digits)
def test_is_valid_agrees_with_the_check_digit(value: str) -> None:
    expected = nhs_number.check_digit(value[:9])
    assert nhs_number.is_valid(value) == (expected is not None and expected == int(value[9]))


@given(st.text(max_size=20))
def test_parse_either_returns_ten_valid_digits_or_raises(value: str) -> None:
    try:
        parsed = nhs_number.parse(value)
    except InvalidNHSNumber:
        assert not nhs_number.is_valid(value)
    else:
        assert nhs_number.is_valid(parsed) and len(parsed) == 10


def test_only_ascii_digits_are_nhs_numbers() -> None:
    assert not nhs_number.is_valid("\u0669\u0664\u0663\u0664\u0667\u0666\u0665\u0669\u0661\u0669")
