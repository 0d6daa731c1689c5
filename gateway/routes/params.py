"""The request-parameter parser, re-exported where the routes have always found it.

The parser lives in :mod:`gateway.fhir.params`, next to the search grammar it serves, so that
the FastAPI dependencies (:mod:`gateway.deps`) and the FHIR helpers can use it without
importing the routes package; routes may import it from either place.
"""

from __future__ import annotations

from gateway.fhir.params import (
    ALWAYS_ALLOWED,
    JSON_FORMATS,
    MAX_COUNT,
    MAX_DATE_CHARS,
    MAX_DIGITS,
    MAX_OFFSET,
    MAX_REPEATS,
    MAX_TEXT,
    MAX_US,
    MIN_US,
    PREFIXED_FILTERS,
    TEXT_CHARS,
    XML_FORMATS,
    check_params,
    choice,
    count_param,
    date_bounds,
    date_range,
    handling,
    ignorable,
    instant_param,
    lenient,
    offset_param,
    one,
    repeated,
    text,
    token,
    token_list,
    whole_number,
)

__all__ = [
    "ALWAYS_ALLOWED",
    "JSON_FORMATS",
    "MAX_COUNT",
    "MAX_DATE_CHARS",
    "MAX_DIGITS",
    "MAX_OFFSET",
    "MAX_REPEATS",
    "MAX_TEXT",
    "MAX_US",
    "MIN_US",
    "PREFIXED_FILTERS",
    "TEXT_CHARS",
    "XML_FORMATS",
    "check_params",
    "choice",
    "count_param",
    "date_bounds",
    "date_range",
    "handling",
    "ignorable",
    "instant_param",
    "lenient",
    "offset_param",
    "one",
    "repeated",
    "text",
    "token",
    "token_list",
    "whole_number",
]
