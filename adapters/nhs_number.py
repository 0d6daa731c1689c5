"""NHS number rules: normalise, validate (Modulus 11), format, and make synthetic ones.

An NHS number is ten digits; the tenth is a Modulus 11 check digit over the first nine
(weights 10 down to 2). A remainder that gives a check digit of 10 means the number can
never be issued. Numbers starting ``999`` are never issued to people and are kept for
test data, so :func:`synthetic` only makes those.

>>> normalise(" 999-000 0018 ")
'9990000018'
>>> is_valid("9990000018")
True
>>> format_nhs("9990000018")
'999 000 0018'

The identifier system an NHS number is given in, and the NHS number verification status
codes with their displays, live here too: they are facts about NHS numbers that every
system (a simulated source as much as an adapter) uses; :mod:`adapters.ukcore` re-exports
them beside the rest of the UK Core vocabulary.
"""

from __future__ import annotations

import functools
import random
import re
from typing import Final

from vocabulary import NHS_NUMBER_RE as _TEN_DIGITS  # ASCII only
from vocabulary import NHS_NUMBER_SYSTEM

__all__ = [
    "NHS_NUMBER_SYSTEM",
    "NHS_VERIFICATION_DISPLAY",
    "InvalidNHSNumber",
    "check_digit",
    "format_nhs",
    "is_valid",
    "normalise",
    "parse",
    "synthetic",
]

#: NHS number verification status (UK Core ``NHSNumberVerificationStatusEngland``, the same
#: codes and displays as CareConnect's STU3 code systems).
NHS_VERIFICATION_DISPLAY: Final[dict[str, str]] = {
    "01": "Number present and verified",
    "02": "Number present but not traced",
    "03": "Trace required",
    "04": "Trace attempted - No match or multiple match found",
    "05": "Trace needs to be resolved - (NHS number or patient detail conflict)",
    "06": "Trace in progress",
    "07": "Number not present and trace not required",
    "08": "Trace postponed (baby under six weeks old)",
}

_SEPARATORS = re.compile(r"[\s\-]+")
_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)


class InvalidNHSNumber(ValueError):
    """The text is not a valid NHS number (wrong shape or failed Modulus 11 check)."""


def normalise(value: str) -> str:
    """Remove spaces and dashes, the only separators real systems put in NHS numbers.

    Nothing else is changed: the result may still be invalid; see :func:`is_valid`.
    """
    return _SEPARATORS.sub("", value.strip())


def check_digit(first_nine: str) -> int | None:
    """The Modulus 11 check digit for nine digits, or ``None`` when no digit can work."""
    if len(first_nine) != 9 or not (first_nine.isascii() and first_nine.isdigit()):
        raise ValueError("check_digit needs exactly nine digits")
    total = sum(int(d) * w for d, w in zip(first_nine, _WEIGHTS, strict=True))
    digit = 11 - (total % 11)
    if digit == 11:
        return 0
    if digit == 10:
        return None
    return digit


def is_valid(value: str | None) -> bool:
    """True when ``value`` (after :func:`normalise`) is ten digits with a correct check digit."""
    if value is None:
        return False
    digits = normalise(value)
    if not _TEN_DIGITS.fullmatch(digits):
        return False
    expected = check_digit(digits[:9])
    return expected is not None and expected == int(digits[9])


@functools.lru_cache(maxsize=4096)
def parse(value: str) -> str:
    """Normalise and validate; return the ten digits or raise :class:`InvalidNHSNumber`.

    Every request names an NHS number, most of them the same few again: a valid one's
    answer is remembered (a refusal raises, and is never remembered)."""
    digits = normalise(value)
    if not is_valid(digits):
        raise InvalidNHSNumber("not a valid NHS number (10 digits with a Modulus 11 check digit)")
    return digits


def format_nhs(value: str) -> str:
    """Format as people write it on letters: ``999 000 0018`` (3-3-4)."""
    digits = parse(value)
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}"


def synthetic(rng: random.Random) -> str:
    """A valid NHS number in the ``999`` test range, drawn from ``rng``."""
    while True:
        first_nine = "999" + "".join(str(rng.randrange(10)) for _ in range(6))
        digit = check_digit(first_nine)
        if digit is not None:
            return first_nine + str(digit)
