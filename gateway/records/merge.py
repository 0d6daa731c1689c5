"""Merge what every source holds for one NHS number into one record.

Pure functions over :class:`adapters.base.SourceResult` values (no I/O), so the rule is easy
to test and to explain:

* **One Patient per NHS number**, logical id = the NHS number. It carries one NHS number
  identifier (UK Core allows one) whose verification status comes from the most trusted
  source (``01`` verified beats anything else), plus every source's own identifiers.
* **Demographics conflicts** are resolved by a fixed order of source Patients: those whose
  NHS number is verified first, then the most recently updated (``meta.lastUpdated``), then
  the source's name (so the result is deterministic). Each element (name, gender, birth date,
  deceased, address, telecom, GP, ethnic category) is taken from the first Patient in that
  order that has it. Where sources disagree the merge reports a :class:`MergeWarning` naming
  the element and the sources — never the values. Only what the decision left visible reaches
  the merge, so a withheld source cannot cause (or appear in) a warning.
* CarePlans, CareTeams and Goals pass through unchanged (their ids are already unique per
  source), and each source's ``Provenance`` is kept, its targets rewritten to the merged
  Patient and pruned to what is in the answer, so a Provenance never points at something
  withheld.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from adapters import ukcore
from adapters.base import Outcome, Resource, SourceResult
from gateway.narrative import narrate

_DEMOGRAPHIC_ELEMENTS = (
    "active",
    "name",
    "gender",
    "birthDate",
    "deceasedDateTime",
    "deceasedBoolean",
    "address",
    "telecom",
    "generalPractitioner",
    "managingOrganization",
)
_CONFLICT_ELEMENTS = ("gender", "birthDate", "deceasedDateTime", "deceasedBoolean")
# FHIRPath names a choice element without its type suffix (``Patient.deceased``).
_FHIRPATH = {"deceasedDateTime": "Patient.deceased", "deceasedBoolean": "Patient.deceased"}


# Warning codes: ``issue.details.coding`` in the answer, system :data:`MERGE_WARNING_SYSTEM`.
# The adapters' ``DataIssue`` codes pass through unchanged under the same system
# ("duplicate-person", "invalid-nhs-number", "unknown-code", "nhs-number-mismatch", ...).
MERGE_WARNING_SYSTEM: Final = "urn:caregateway:merge-warning"
DEMOGRAPHICS_CONFLICT: Final = "demographics-conflict"


@dataclass(frozen=True, slots=True)
class MergeWarning:
    """Something the caller should know about the merged record.

    ``code`` is a :data:`MERGE_WARNING_SYSTEM` code, ``text`` the human message, ``sources``
    the source names involved and ``expression`` the FHIRPath of the element concerned (empty
    when the finding is not about one element). None of them carries a value from the record.
    """

    code: str
    text: str
    sources: tuple[str, ...] = ()
    expression: tuple[str, ...] = ()


@dataclass(slots=True)
class MergedRecord:
    nhs_number: str
    patient: Resource | None
    care_plans: list[Resource] = field(default_factory=list)
    care_teams: list[Resource] = field(default_factory=list)
    goals: list[Resource] = field(default_factory=list)
    provenance: list[Resource] = field(default_factory=list)
    warnings: list[MergeWarning] = field(default_factory=list)
    # The remembered merge this record is a copy of (see merge): the same object for every
    # copy of an unchanged merge, so what is made from the record can be remembered too.
    basis: MergedRecord | None = field(default=None, repr=False, compare=False)

    def resources(self) -> list[Resource]:
        """Everything in ``$everything`` order: Patient, CarePlans, Goals, CareTeams, Provenance."""
        head = [self.patient] if self.patient is not None else []
        return [*head, *self.care_plans, *self.goals, *self.care_teams, *self.provenance]


def _nhs_identifier(patient: Resource) -> Resource | None:
    for ident in patient.get("identifier", ()):
        if ident.get("system") == ukcore.NHS_NUMBER_SYSTEM:
            return dict(ident)
    return None


def _verification_code(ident: Resource | None) -> str | None:
    if ident is None:
        return None
    for ext in ident.get("extension", ()):
        if ext.get("url") == ukcore.EXT_NHS_VERIFICATION:
            for coding in ext.get("valueCodeableConcept", {}).get("coding", ()):
                code = coding.get("code")
                if isinstance(code, str):
                    return code
    return None


def _trust_order(item: tuple[str, Resource]) -> tuple[int, str, str]:
    source, patient = item
    verified = _verification_code(_nhs_identifier(patient)) == ukcore.VERIFIED
    updated = str(patient.get("meta", {}).get("lastUpdated", ""))
    # sort ascending: verified first (0), most recent first (inverted below), then source name
    return (0 if verified else 1, _invert(updated), source)


@functools.lru_cache(maxsize=4096)
def _invert(text: str) -> str:
    """A string that sorts in the reverse order of ``text`` (for 'most recent first').

    Remembered: the same few ``lastUpdated`` values come back on every read of a record."""
    return "".join(chr(0x10FFFF - ord(c)) for c in text)


def _source_of(resource: Resource) -> str:
    uri = str(resource.get("meta", {}).get("source", ""))
    return uri.rsplit(":", 1)[-1] if uri else "unknown"


def merge_patient(
    nhs_number: str, patients: Sequence[tuple[str, Resource]]
) -> tuple[Resource | None, list[MergeWarning]]:
    """Merge source Patients (``(source name, Patient)`` pairs) into one; see module docs."""
    if not patients:
        return None, []
    ordered = sorted(patients, key=_trust_order)
    warnings: list[MergeWarning] = []

    nhs_ident = next(
        (i for _, p in ordered if (i := _nhs_identifier(p)) is not None),
        {"system": ukcore.NHS_NUMBER_SYSTEM},
    )
    nhs_ident["value"] = nhs_number
    identifiers: list[Resource] = [nhs_ident]
    seen: set[tuple[str, str]] = set()
    for _, patient in ordered:
        for ident in patient.get("identifier", ()):
            key = (str(ident.get("system")), str(ident.get("value")))
            if ident.get("system") != ukcore.NHS_NUMBER_SYSTEM and key not in seen:
                seen.add(key)
                identifiers.append(ident)

    merged: Resource = {
        "resourceType": "Patient",
        "id": nhs_number,
        "meta": {
            "profile": [ukcore.PROFILE_PATIENT],
            "tag": _union_tags(p for _, p in ordered),
        },
        "identifier": identifiers,
    }
    last_updated = max((str(p.get("meta", {}).get("lastUpdated", "")) for _, p in ordered))
    if last_updated:
        merged["meta"]["lastUpdated"] = last_updated
    security = _union_security(p for _, p in ordered)
    if security:
        merged["meta"]["security"] = security

    for element in _DEMOGRAPHIC_ELEMENTS:
        for _, patient in ordered:
            if element in patient:
                merged[element] = patient[element]
                break
    ethnic = next(
        (
            e
            for _, p in ordered
            for e in p.get("extension", ())
            if e.get("url") == ukcore.EXT_ETHNIC_CATEGORY
        ),
        None,
    )
    if ethnic is not None:
        merged["extension"] = [ethnic]
    if "deceasedDateTime" in merged:
        merged.pop("deceasedBoolean", None)

    for element in _CONFLICT_ELEMENTS:
        holders = [(s, _freeze(p[element])) for s, p in ordered if element in p]
        if len({v for _, v in holders}) > 1:
            sources = tuple(sorted({s for s, _ in holders}))
            shown_from = holders[0][0]  # the first in trust order that has the element
            warnings.append(
                MergeWarning(
                    DEMOGRAPHICS_CONFLICT,
                    f"Sources disagree on Patient.{element} ({', '.join(sources)}); shown: the "
                    f"value from {shown_from} (verified NHS number first, then most recent).",
                    sources=sources,
                    expression=(_FHIRPATH.get(element, f"Patient.{element}"),),
                )
            )
    return merged, warnings


def _freeze(value: Any) -> str:
    return repr(value)


def _union_tags(patients: Iterable[Resource]) -> list[Resource]:
    tags: dict[tuple[str, str], Resource] = {}
    for patient in patients:
        for tag in patient.get("meta", {}).get("tag", ()):
            tags.setdefault((str(tag.get("system")), str(tag.get("code"))), tag)
    return list(tags.values())


def _union_security(patients: Iterable[Resource]) -> list[Resource]:
    labels: dict[tuple[str, str], Resource] = {}
    for patient in patients:
        for label in patient.get("meta", {}).get("security", ()):
            labels.setdefault((str(label.get("system")), str(label.get("code"))), label)
    return list(labels.values())


_MERGES_REMEMBERED: Final = 256
_merges: OrderedDict[tuple[Any, ...], tuple[tuple[tuple[Resource, ...], ...], MergedRecord]] = (
    OrderedDict()
)


def merge(nhs_number: str, results: Sequence[SourceResult]) -> MergedRecord:
    """Merge the (already permitted) contributions of each source for one person.

    Pure, so a merge of the very same contributions is remembered (bounded): a warm read of
    an unchanged record hands over the same resource tuples each time (the cache keeps what
    a sealed entry opened to, :class:`~gateway.cache.RecordCache`), and the merged Patient,
    the narratives and the retargeted Provenance are then made once, not per request. The
    key is the identity of each source's resource tuple (held by the entry, and checked, so
    an identity is never mistaken for another object's) with the findings by value; a
    contribution the decision cut down is a new tuple, so it is merged afresh. The resources
    are shared, never changed: every caller gets lists of its own."""
    key = (
        nhs_number,
        *((r.source, r.outcome, id(r.resources), r.issues) for r in results),
    )
    held = _merges.get(key)
    if held is not None and all(a is r.resources for a, r in zip(held[0], results, strict=True)):
        _merges.move_to_end(key)
        return _copy(held[1])
    record = _merge(nhs_number, results)
    _merges[key] = (tuple(r.resources for r in results), record)
    while len(_merges) > _MERGES_REMEMBERED:
        _merges.popitem(last=False)
    return _copy(record)


def _copy(record: MergedRecord) -> MergedRecord:
    return MergedRecord(
        nhs_number=record.nhs_number,
        patient=record.patient,
        care_plans=list(record.care_plans),
        care_teams=list(record.care_teams),
        goals=list(record.goals),
        provenance=list(record.provenance),
        warnings=list(record.warnings),
        basis=record,
    )


def _merge(nhs_number: str, results: Sequence[SourceResult]) -> MergedRecord:
    record = MergedRecord(nhs_number=nhs_number, patient=None)
    patients: list[tuple[str, Resource]] = []
    provenance: list[Resource] = []
    for result in results:
        if result.outcome is not Outcome.FOUND:
            continue
        # One warning per finding: the same finding about two kinds of resource (``about``)
        # says nothing more to the caller the second time.
        for code, text in dict.fromkeys((i.code, i.text) for i in result.issues):
            record.warnings.append(
                MergeWarning(code, f"{result.source}: {text}", sources=(result.source,))
            )
        for resource in result.resources:
            kind = resource.get("resourceType")
            if kind == "Patient":
                patients.append((result.source, resource))
            elif kind == "CarePlan":
                record.care_plans.append(resource)
            elif kind == "CareTeam":
                record.care_teams.append(resource)
            elif kind == "Goal":
                record.goals.append(resource)
            elif kind == "Provenance":
                provenance.append(resource)
    record.patient, conflicts = merge_patient(nhs_number, patients)
    record.warnings.extend(conflicts)
    # Narrative of what is actually shown (gateway.narrative: why here, after the decision).
    if record.patient is not None:
        record.patient = narrate(record.patient)
    record.care_plans = [narrate(p) for p in record.care_plans]
    record.care_teams = [narrate(t) for t in record.care_teams]
    present = {f"{r['resourceType']}/{r['id']}" for r in record.resources()}
    record.provenance = [
        p for p in (_retarget(p, nhs_number, present) for p in provenance) if p is not None
    ]
    return record


def _retarget(provenance: Resource, nhs_number: str, present: set[str]) -> Resource | None:
    """Point a source Provenance at the merged Patient and at what is actually in the answer."""
    targets: list[Resource] = []
    seen: set[str] = set()
    for target in provenance.get("target", ()):
        ref = str(target.get("reference", ""))
        if ref.startswith("Patient/"):
            ref = f"Patient/{nhs_number}"
        # A versioned target (``CarePlan/{id}/_history/{v}``, a joint plan's version) is
        # kept as it is when the resource it is a version of is in the answer.
        if ref.split("/_history/", 1)[0] in present and ref not in seen:
            seen.add(ref)
            targets.append({"reference": ref})
    if not targets:
        return None
    return {**provenance, "target": targets}


def source_name(resource: Resource) -> str:
    """The source a normalised resource came from (from ``meta.source``)."""
    return _source_of(resource)
