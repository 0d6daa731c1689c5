"""Pure mapping from the council's JSON (Person, SupportPlan, Involvement) to UK Core R4.

``specs/mappings.md`` decides; choices it leaves open, made here:

* **Needs become notes.** ``needs[]`` → ``CarePlan.note`` entries
  ``"Assessed need — {domain}: {description}"``. A need is an assessment finding, not
  something the person is working towards, so it is not a ``Goal``; a note keeps it with
  its plan and visible wherever the plan is shown.
* **Outcomes become Goals.** ``outcomes[]`` → ``Goal`` (id ``{plan id}.g{n}``, ``n`` from 1,
  ``lifecycleStatus`` ``active``, ``achievementStatus`` from HL7 goal-achievement)
  referenced from ``CarePlan.goal``. Goals carry their plan's security labels.
* **Unknown codes are kept as text, never guessed,** and reported as a ``DataIssue``
  (``unknown-code``): a gender or ethnicity code outside the table is left out; an unknown
  plan status becomes ``unknown``; an unknown service status becomes activity ``unknown``;
  an unknown ``planType`` is still the category code (the spec allows the source's own word)
  with the word as ``text``; an unknown NHS number status keeps the number with
  verification ``02`` (present, not traced), the most we can claim.
* **Services** → ``activity[].detail`` with ``kind`` ``ServiceRequest``, ``code.text`` =
  the service type, ``scheduledTiming.repeat`` (frequency/period/periodUnit, and
  ``boundsPeriod`` from the service dates) for ``{count, period}``, ``scheduledString`` for
  free text, ``scheduledPeriod`` when there is no frequency.
* **One CareTeam per person** from the involvements that are current on ``today`` (``end``
  null or not before today); none is made when no involvement is current.
* **Security labels.** ``confidentiality: restricted`` → ``R`` on the plan and its Goals; a
  Person with ``restricted: true`` → ``R`` on every resource made for that person (the
  adapter applies :func:`add_label` to all of them).
* **Dates that are not FHIR dates are left out** (``bad-date``) rather than failing the
  resource: a typo in an address's start date must not hide the person. A ``lastUpdated``
  that is not an RFC 3339 instant is simply not copied.
* The source organisation's display name is not in the configuration; it is taken from an
  involvement whose organisation has the source's ODS code, when there is one.

DataIssue texts never contain NHS numbers, names or other values from the record.

This module is the public face: Person rules live in ``_patient``, SupportPlan and
Involvement in ``_care``, the context and shared helpers in ``_common``; the Provenance is
made here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from adapters.base import Resource
from adapters.context import make_provenance as source_provenance
from adapters.socialcare._care import (
    GOAL_ACHIEVEMENT_SYSTEM,
    is_current,
    map_involvements,
    map_support_plan,
    organisation_name,
)
from adapters.socialcare._common import Context, add_label, resource_id
from adapters.socialcare._patient import map_person, person_nhs_number

__all__ = [
    "GOAL_ACHIEVEMENT_SYSTEM",
    "Context",
    "add_label",
    "is_current",
    "make_provenance",
    "map_involvements",
    "map_person",
    "map_support_plan",
    "organisation_name",
    "person_nhs_number",
]


# --- Provenance ---------------------------------------------------------------------------------


def make_provenance(
    person_id: str, targets: Sequence[Resource], recorded: datetime, ctx: Context
) -> Resource:
    """One UK Core Provenance per source person, naming the source organisation by ODS code."""
    return source_provenance(
        ctx, resource_id(ctx.source, person_id, "provenance"), targets, recorded
    )
