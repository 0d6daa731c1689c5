"""Validate the R4 resources adapters produce: R4B model structure plus the UK Core checks.

The ``fhir.resources`` R4B models (the model set for R4 JSON, see DEPENDENCY-NOTES) check
structure — unknown or missing elements, date formats, choice types — but not coded values,
profiles or NHS numbers. Those checks are ours and live here, in small tables:

* ``_PROFILES``: the UK Core profile each resource type must claim in ``meta.profile``;
* ``_CHECKS``: per resource type, functions that each return a list of problems.

Every adapter validates a resource where it is born (``validate_resource``) so a bad
mapping or bad source data is found at the edge, never in the gateway. Messages name the
element and the rule, never the value (values may be NHS numbers or names).

>>> validate_resource({"resourceType": "Goal", "lifecycleStatus": "bogus",
...     "description": {"text": "x"}, "subject": {"reference": "Patient/9990000018"}})
Traceback (most recent call last):
...
adapters.validation.UKCoreValidationError: Goal: lifecycleStatus: not in the required value set
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Container, Mapping
from typing import Any, Final

from pydantic import ValidationError

from adapters import nhs_number, ukcore

__all__ = [
    "UKCoreValidationError",
    "coded_problems",
    "resource_problems",
    "validate_bundle",
    "validate_resource",
]

Resource = Mapping[str, Any]


class UKCoreValidationError(ValueError):
    """A resource is not valid R4 or does not meet the UK Core rules we enforce."""


_PROFILES: Final[dict[str, str]] = {
    "Patient": ukcore.PROFILE_PATIENT,
    "CarePlan": ukcore.PROFILE_CAREPLAN,
    "CareTeam": ukcore.PROFILE_CARETEAM,
    "Provenance": ukcore.PROFILE_PROVENANCE,
    "Consent": ukcore.PROFILE_CONSENT,
    "AuditEvent": ukcore.PROFILE_AUDITEVENT,
}

_LEGACY_EXTENSIONS: Final = ukcore.STU3_NHS_VERIFICATION_EXTENSIONS | {
    ukcore.STU3_EXT_ETHNIC_CATEGORY
}


@functools.cache
def _model(resource_type: str) -> Any:
    """The R4B model class for a resource type (imported once, on first use)."""
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError, ImportError, AttributeError):
        return None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _codings(concept: Any) -> list[Mapping[str, Any]]:
    if not isinstance(concept, Mapping):
        return []
    return [c for c in _list(concept.get("coding")) if isinstance(c, Mapping)]


def _member(value: Any, collection: Container[str]) -> bool:
    """``value in collection`` for any JSON value (lists and objects are never members)."""
    return isinstance(value, str) and value in collection


def _in(value_set: Container[str], value: Any, where: str, *, required: bool) -> list[str]:
    if value is None:
        return [f"{where}: required"] if required else []
    if not _member(value, value_set):
        return [f"{where}: not in the required value set"]
    return []


# --- checks for every resource ---------------------------------------------------------

_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def _check_id(resource: Resource) -> list[str]:
    """FHIR's id rule, whose 64-character limit the models do not enforce."""
    rid = resource.get("id")
    if rid is None or (isinstance(rid, str) and _FHIR_ID.fullmatch(rid)):
        return []
    return ["id: must be 1-64 of A-Z a-z 0-9 - ."]


def _check_profile(resource: Resource) -> list[str]:
    wanted = _PROFILES.get(str(resource.get("resourceType")))
    if wanted is None:
        return []
    meta = resource.get("meta")
    profiles = _list(meta.get("profile")) if isinstance(meta, Mapping) else []
    if wanted not in profiles:
        return [f"meta.profile: must include {wanted}"]
    return []


def _check_security(resource: Resource) -> list[str]:
    """Confidentiality labels use the R4 v3-Confidentiality system and one of its codes.

    Labels from other security systems (e.g. v3-ActCode) are allowed; the STU3 system and
    codings without a system are not.
    """
    meta = resource.get("meta")
    if not isinstance(meta, Mapping):
        return []
    problems: list[str] = []
    for i, label in enumerate(_list(meta.get("security"))):
        where = f"meta.security[{i}]"
        if not isinstance(label, Mapping):
            continue
        system = label.get("system")
        if system is None or system == ukcore.STU3_CONFIDENTIALITY_SYSTEM:
            problems.append(f"{where}: system must be {ukcore.CONFIDENTIALITY_SYSTEM}")
        elif system == ukcore.CONFIDENTIALITY_SYSTEM:
            problems += _in(ukcore.CONFIDENTIALITY_DISPLAY, label.get("code"), where, required=True)
    return problems


def _check_legacy_extensions(resource: Resource) -> list[str]:
    return [
        f"extension[{i}]: STU3 extension URL, use the UK Core one"
        for i, ext in enumerate(_list(resource.get("extension")))
        if isinstance(ext, Mapping) and _member(ext.get("url"), _LEGACY_EXTENSIONS)
    ]


# --- per resource type ------------------------------------------------------------------


def _check_nhs_identifiers(patient: Resource) -> list[str]:
    problems: list[str] = []
    found = [
        (i, ident)
        for i, ident in enumerate(_list(patient.get("identifier")))
        if isinstance(ident, Mapping) and ident.get("system") == ukcore.NHS_NUMBER_SYSTEM
    ]
    if len(found) > 1:
        problems.append("identifier: at most one NHS number identifier")
    for i, ident in found:
        where = f"identifier[{i}]"
        value = ident.get("value")
        if (
            not isinstance(value, str)
            or not value.isascii()
            or value != nhs_number.normalise(value)
        ):
            problems.append(f"{where}.value: NHS number must be 10 digits without separators")
        elif not nhs_number.is_valid(value):
            problems.append(f"{where}.value: NHS number fails the Modulus 11 check")
        problems += _check_verification(ident, where)
    return problems


def _check_verification(ident: Mapping[str, Any], where: str) -> list[str]:
    exts = [e for e in _list(ident.get("extension")) if isinstance(e, Mapping)]
    status = [e for e in exts if e.get("url") == ukcore.EXT_NHS_VERIFICATION]
    if any(_member(e.get("url"), ukcore.STU3_NHS_VERIFICATION_EXTENSIONS) for e in exts):
        return [f"{where}.extension: STU3 verification status URL, use the UK Core one"]
    if not status:
        return []  # UK Core: the verification status slice is 0..1
    if len(status) > 1:
        return [f"{where}.extension: at most one NHS number verification status"]
    codings = _codings(status[0].get("valueCodeableConcept"))
    ok = [
        c
        for c in codings
        if c.get("system") == ukcore.NHS_VERIFICATION_SYSTEM
        and _member(c.get("code"), ukcore.NHS_VERIFICATION_DISPLAY)
    ]
    if not ok:
        return [
            f"{where}.extension: verification status needs a known code from "
            f"{ukcore.NHS_VERIFICATION_SYSTEM}"
        ]
    return []


def _check_ethnic_category(patient: Resource) -> list[str]:
    """The binding is *extensible*: a UK Core code, or text alone when none fits (an unknown
    source code). A coding that claims the UK Core system must hold a member code, and codings
    with no UK Core one among them are an unmapped source code (e.g. still the STU3 system)."""
    problems: list[str] = []
    for i, ext in enumerate(_list(patient.get("extension"))):
        if not isinstance(ext, Mapping) or ext.get("url") != ukcore.EXT_ETHNIC_CATEGORY:
            continue
        concept = ext.get("valueCodeableConcept")
        codings = _codings(concept)
        ukcore_codes = [
            c.get("code") for c in codings if c.get("system") == ukcore.ETHNIC_CATEGORY_SYSTEM
        ]
        text = concept.get("text") if isinstance(concept, Mapping) else None
        if any(not _member(code, ukcore.ETHNIC_CATEGORY_DISPLAY) for code in ukcore_codes) or (
            codings and not ukcore_codes
        ):
            problems.append(
                f"extension[{i}]: ethnic category needs a known code from "
                f"{ukcore.ETHNIC_CATEGORY_SYSTEM}"
            )
        elif not codings and not (isinstance(text, str) and text.strip()):
            problems.append(f"extension[{i}]: ethnic category has neither a code nor text")
    return problems


def _check_gender(patient: Resource) -> list[str]:
    return _in(ukcore.ADMINISTRATIVE_GENDER, patient.get("gender"), "gender", required=False)


def _check_careplan(plan: Resource) -> list[str]:
    problems = _in(ukcore.CAREPLAN_STATUS, plan.get("status"), "status", required=True)
    problems += _in(ukcore.CAREPLAN_INTENT, plan.get("intent"), "intent", required=True)
    for i, activity in enumerate(_list(plan.get("activity"))):
        detail = activity.get("detail") if isinstance(activity, Mapping) else None
        if isinstance(detail, Mapping):
            problems += _in(
                ukcore.CAREPLAN_ACTIVITY_STATUS,
                detail.get("status"),
                f"activity[{i}].detail.status",
                required=True,
            )
    return problems


def _check_careteam(team: Resource) -> list[str]:
    return _in(ukcore.CARETEAM_STATUS, team.get("status"), "status", required=False)


def _check_goal(goal: Resource) -> list[str]:
    return _in(
        ukcore.GOAL_LIFECYCLE_STATUS, goal.get("lifecycleStatus"), "lifecycleStatus", required=True
    )


Check = Callable[[Resource], list[str]]

_COMMON: Final[tuple[Check, ...]] = (
    _check_id,
    _check_profile,
    _check_security,
    _check_legacy_extensions,
)
_CHECKS: Final[dict[str, tuple[Check, ...]]] = {
    "Patient": (_check_nhs_identifiers, _check_ethnic_category, _check_gender),
    "CarePlan": (_check_careplan,),
    "CareTeam": (_check_careteam,),
    "Goal": (_check_goal,),
}


def _structure_problems(resource: Resource, resource_type: str) -> list[str]:
    model = _model(resource_type)
    if model is None:
        return [f"unknown resource type {resource_type!r}"]
    try:
        model.model_validate(dict(resource))
    except ValidationError as exc:
        return [
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)[:5]
        ]
    except (TypeError, ValueError) as exc:  # fhir-core raises plain errors for some shapes
        return [f"(root): {type(exc).__name__}"]
    return []


def validate_resource(resource: Mapping[str, Any]) -> None:
    """Raise :class:`UKCoreValidationError` unless ``resource`` is valid R4 and meets UK Core.

    UK Core checks run first (cheap, and their messages are the most useful), then the R4B
    model. The message lists every UK Core problem found, never the offending values.
    """
    if not isinstance(resource, Mapping):
        raise UKCoreValidationError("resource must be a JSON object")
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        raise UKCoreValidationError("resourceType missing")
    problems = resource_problems(resource)
    if problems:
        raise UKCoreValidationError(f"{resource_type}: " + "; ".join(problems))


def resource_problems(resource: Mapping[str, Any]) -> list[str]:
    """What :func:`validate_resource` would report, as ``"{element}: {rule}"`` strings (the
    element relative to the resource, e.g. ``activity[0].detail.status``), or ``[]``.

    For the gateway's own writes (joint care plans), which answer each problem with the
    element it names. The UK Core checks run first; the R4B model only when they pass.
    """
    resource_type = str(resource.get("resourceType"))
    problems: list[str] = []
    for check in (*_COMMON, *_CHECKS.get(resource_type, ())):
        problems += check(resource)
    if not problems:
        problems = _structure_problems(resource, resource_type)
    return problems


def coded_problems(resource: Mapping[str, Any]) -> list[str]:
    """The coded-value checks of one resource type alone (no profile claim, no model): for
    resources contained in another, which the container's model already checked."""
    problems: list[str] = []
    for check in _CHECKS.get(str(resource.get("resourceType")), ()):
        problems += check(resource)
    return problems


def validate_bundle(bundle: Mapping[str, Any]) -> None:
    """Validate every ``entry.resource`` of a Bundle; the message names the failing entry.

    The Bundle envelope's own structure is checked lightly (type, entry list) so the
    resources are not validated twice.
    """
    if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
        raise UKCoreValidationError("not a Bundle")
    if not isinstance(bundle.get("type"), str):
        raise UKCoreValidationError("Bundle: type: required")
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise UKCoreValidationError("Bundle: entry must be a list")
    for i, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if resource is None:
            continue
        try:
            validate_resource(resource)
        except UKCoreValidationError as exc:
            raise UKCoreValidationError(f"Bundle.entry[{i}].resource: {exc}") from None
