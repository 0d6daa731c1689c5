"""Pure mapping of the community source's STU3 (CareConnect) resources to UK Core R4.

Each function takes one STU3 resource as the source sent it (a dict), checks it against the
``fhir.resources.STU3`` model, and returns a plain R4 dict in the gateway's UK Core shape
(see :mod:`adapters.base` for the conventions and ``specs/mappings.md`` for the rules).
Anything without a mapping is dropped, never guessed; codes we cannot map are kept as text
and reported as :class:`~adapters.base.DataIssue` values on the :class:`Context`.

This module is the public face: Patient rules live in ``_patient``, CarePlan and CareTeam in
``_care``, the context and shared parsing/meta/reference helpers in ``_common``; the
Provenance is made here.

>>> ctx = Context(source="community", organisation="RWX", domain="health")
>>> patient = map_patient(stu3_patient, ctx)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from adapters.base import Resource
from adapters.community._care import (
    CAREPLAN_STATUS_STU3_TO_R4,
    PLAN_TYPE_HEALTH,
    map_care_plan,
    map_care_team,
)
from adapters.community._common import Context, ConversionError, make_id
from adapters.community._patient import map_patient, patient_nhs_number
from adapters.context import make_provenance as source_provenance

__all__ = [
    "CAREPLAN_STATUS_STU3_TO_R4",
    "PLAN_TYPE_HEALTH",
    "ConversionError",
    "Context",
    "map_care_plan",
    "map_care_team",
    "map_patient",
    "make_provenance",
    "patient_nhs_number",
]


# --- Provenance ------------------------------------------------------------------------


def make_provenance(
    patient_id: str, targets: Sequence[Resource], recorded: datetime, ctx: Context
) -> Resource:
    """One UK Core Provenance per source patient, naming the source organisation by ODS."""
    return source_provenance(ctx, make_id(ctx.source, patient_id, "provenance"), targets, recorded)
