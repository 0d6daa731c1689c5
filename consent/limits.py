"""Limits that keep a consent directive cheap to check, store and evaluate.

A person's directives are parsed again on every request about that person, so one enormous
or deeply nested Consent would slow down every later read of their record, for every user.
These limits are far above what any of the three kinds of directive needs
(``specs/consent-directives.md``: an objection is one provision; withholding or refusing an
organisation is one provision with one nested deny) and they are checked before anything
else looks at the resource, by one iterative walk that stops at the first excess — never
by recursion, so a 500-deep ``provision`` is refused, not a ``RecursionError``.

==========================  ======  ======================================================
limit                       value   why
==========================  ======  ======================================================
body of a Consent request   64 KiB  checked by the Consent API while it reads (``413``)
``provision`` nesting       4       ``Consent.provision`` is level 1; directives use 2
provisions in all           50      one directive may name several organisations
items in any one list       100     ``identifier``, ``actor``, ``purpose``, ``coding`` ...
JSON nesting                32      a valid directive nests about 12 levels
JSON values in all          5,000   a directive of the three kinds has well under 200
==========================  ======  ======================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

MAX_CONSENT_BYTES: Final = 64 * 1024
MAX_PROVISION_DEPTH: Final = 4
MAX_PROVISIONS: Final = 50
MAX_LIST_ITEMS: Final = 100
MAX_JSON_DEPTH: Final = 32
MAX_JSON_VALUES: Final = 5_000


def limit_problems(resource: Any) -> list[str]:
    """The first limit ``resource`` (a parsed JSON value) exceeds, as a message naming the
    element, or ``[]``. Work is bounded by the limits themselves, not by the input's size."""
    values = 0
    provisions = 0
    # (value, JSON depth, provision depth, where)
    stack: list[tuple[Any, int, int, str]] = [(resource, 1, 0, "Consent")]
    while stack:
        value, depth, pdepth, where = stack.pop()
        values += 1
        if values > MAX_JSON_VALUES:
            return [f"the Consent holds more than {MAX_JSON_VALUES} values"]
        if depth > MAX_JSON_DEPTH:
            return [f"{where}: nested more than {MAX_JSON_DEPTH} levels deep"]
        if isinstance(value, list):
            if len(value) > MAX_LIST_ITEMS:
                return [f"{where} has more than {MAX_LIST_ITEMS} items"]
            stack.extend((item, depth + 1, pdepth, f"{where}[{i}]") for i, item in enumerate(value))
        elif isinstance(value, Mapping):
            if len(value) > MAX_LIST_ITEMS:
                return [f"{where} has more than {MAX_LIST_ITEMS} elements"]
            for key, item in value.items():
                child = pdepth
                if key == "provision":
                    child = pdepth + 1
                    if child > MAX_PROVISION_DEPTH:
                        return [
                            f"{where}.provision: provisions may be nested at most "
                            f"{MAX_PROVISION_DEPTH} levels deep"
                        ]
                    provisions += len(item) if isinstance(item, list) else 1
                    if provisions > MAX_PROVISIONS:
                        return [f"the Consent holds more than {MAX_PROVISIONS} provisions"]
                stack.append((item, depth + 1, child, f"{where}.{key}"))
    return []
