"""Shared pieces of the STU3 → UK Core R4 conversion: parsing, ids, meta, references.

Everything here is pure. Problems with the source's content raise :class:`ConversionError`,
whose message names the resource type and the failing element paths, never a value (values
may be NHS numbers or names).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fhir.resources.STU3.careplan import CarePlan as STU3CarePlan
from fhir.resources.STU3.careteam import CareTeam as STU3CareTeam
from fhir.resources.STU3.organization import Organization as STU3Organization
from fhir.resources.STU3.patient import Patient as STU3Patient
from fhir.resources.STU3.practitioner import Practitioner as STU3Practitioner
from pydantic import ValidationError

from adapters import ukcore
from adapters.base import Resource
from adapters.context import MappingContext
from vocabulary import SDS_USER_SYSTEM

_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_MODELS: dict[str, Any] = {
    "Patient": STU3Patient,
    "CarePlan": STU3CarePlan,
    "CareTeam": STU3CareTeam,
    "Organization": STU3Organization,
    "Practitioner": STU3Practitioner,
}


class ConversionError(Exception):
    """The source sent content we cannot normalise. The message carries no identifiers."""


@dataclass(slots=True)
class Context(MappingContext):
    """What a conversion needs besides the STU3 resource itself (:class:`MappingContext`).

    ``resolved`` maps ``"Organization/{id}"`` / ``"Practitioner/{id}"`` to the STU3 resources
    the client fetched (or the source included).
    """

    resolved: Mapping[str, Resource] = field(default_factory=dict)


class Checked(dict[str, Any]):
    """A source resource :func:`parse_stu3` has already checked against its STU3 model.

    The STU3 model is the costliest step of a cold read after the HTTP exchanges; a Patient
    is checked when its search answer is read and reaches :func:`parse_stu3` again in the
    mapping. The type says it was checked (the mapping never changes what the source sent),
    so the second call costs nothing.
    """

    __slots__ = ()


def parse_stu3(raw: Any, expected: str) -> Resource:
    """Check ``raw`` is a structurally valid STU3 resource of type ``expected``; return it,
    as a :class:`Checked` (which a second call takes as it is)."""
    if not isinstance(raw, dict) or raw.get("resourceType") != expected:
        raise ConversionError(f"expected a STU3 {expected} resource")
    if isinstance(raw, Checked):
        return raw
    try:
        _MODELS[expected].model_validate(raw)
    except (ValidationError, ValueError, TypeError) as exc:
        raise ConversionError(f"STU3 {expected} failed validation{_where(exc)}") from None
    return Checked(raw)


def _where(exc: Exception) -> str:
    if not isinstance(exc, ValidationError):
        return ""
    paths = sorted({".".join(str(p) for p in err["loc"]) for err in exc.errors()})
    return " at " + ", ".join(paths[:5]) if paths else ""


def type_of(raw: Resource) -> str | None:
    """The ``resourceType`` of a source resource, for the ``about`` of a finding in it."""
    kind = raw.get("resourceType")
    return kind if isinstance(kind, str) else None


def make_id(*parts: str) -> str:
    """``{source}.{personId}[.{localId}]`` within FHIR's id rules."""
    value = ".".join(parts)
    if not _FHIR_ID.fullmatch(value):
        raise ConversionError("source id does not fit FHIR id rules once prefixed")
    return value


def local_id(raw: Resource) -> str:
    value = raw.get("id")
    if not isinstance(value, str) or not value:
        raise ConversionError(f"STU3 {raw.get('resourceType')} has no id")
    return value


def meta(raw: Resource, profile: str, ctx: Context) -> Resource:
    """UK Core profile, our source and care-domain tag, v3 Confidentiality labels as R4."""
    out = ukcore.resource_meta(profile, ctx.source, ctx.domain)
    source_meta = raw.get("meta") or {}
    if source_meta.get("lastUpdated"):
        out["lastUpdated"] = source_meta["lastUpdated"]
    labels = security_labels(source_meta.get("security") or (), ctx, about=type_of(raw))
    if labels:
        out["security"] = labels
    return out


def head(raw: Resource, profile: str, ctx: Context, *owners: str) -> Resource:
    """The start of the R4 resource made from ``raw``: its type (the same in STU3 and R4 for
    what we map), the id ``{source}[.{owner}...].{id}`` and :func:`meta`."""
    return {
        "resourceType": raw["resourceType"],
        "id": make_id(ctx.source, *owners, local_id(raw)),
        "meta": meta(raw, profile, ctx),
    }


def security_labels(
    codings: Sequence[Resource], ctx: Context, *, about: str | None
) -> list[Resource]:
    """STU3 ``http://hl7.org/fhir/v3/Confidentiality`` (or the R4 system) → R4 labels, and
    the ``v3-ActCode`` handling caveats we know (``NOPAT``, STU3 or R4 system) as R4 codings:
    dropping ``NOPAT`` would show the person what a clinician decided they should not see.

    Other security systems are not ours to interpret and are dropped; an unknown
    confidentiality code is reported, not guessed (``about``: the labelled resource's type).
    """
    labels: list[Resource] = []
    for coding in codings:
        system = coding.get("system")
        if system in (ukcore.STU3_ACT_CODE_SYSTEM, ukcore.ACT_CODE_SYSTEM):
            if coding.get("code") in ukcore.HANDLING_CAVEATS:
                caveat = ukcore.handling_label(str(coding["code"]))
                if caveat not in labels:
                    labels.append(caveat)
            continue
        if system not in (ukcore.STU3_CONFIDENTIALITY_SYSTEM, ukcore.CONFIDENTIALITY_SYSTEM):
            continue
        code = coding.get("code")
        if code in ukcore.CONFIDENTIALITY_DISPLAY:
            label = ukcore.security_label(code)
            if label not in labels:
                labels.append(label)
        else:
            ctx.issue("unknown-code", "confidentiality code not in v3 Confidentiality", about=about)
    return labels


def codeable(cc: Any) -> Resource | None:
    """A CodeableConcept's codings (system, version, code, display) and text, nothing else."""
    if not isinstance(cc, dict):
        return None
    out: Resource = {}
    codings = [
        {k: c[k] for k in ("system", "version", "code", "display") if c.get(k) is not None}
        for c in cc.get("coding") or ()
        if isinstance(c, dict)
    ]
    codings = [c for c in codings if c]
    if codings:
        out["coding"] = codings
    if cc.get("text"):
        out["text"] = cc["text"]
    return out or None


def copy_keys(raw: Any, keys: Sequence[str]) -> Resource | None:
    """The listed elements of a datatype whose STU3 and R4 shapes are the same."""
    if not isinstance(raw, dict):
        return None
    out = {k: raw[k] for k in keys if raw.get(k) is not None}
    return out or None


PERIOD_KEYS = ("start", "end")
IDENTIFIER_KEYS = ("use", "type", "system", "value", "period")


def put_list(out: Resource, key: str, items: Sequence[Resource | None]) -> None:
    """``out[key]``: the items that mapped to something, or nothing when none did (FHIR
    allows no empty lists)."""
    if any(items):
        out[key] = [item for item in items if item]


def copy_list(raw: Resource, out: Resource, key: str, keys: Sequence[str]) -> None:
    """A list of datatypes whose STU3 and R4 shapes are the same, each as :func:`copy_keys`."""
    put_list(out, key, [copy_keys(item, keys) for item in raw.get(key) or ()])


def find_target(reference: Any, container: Resource, ctx: Context) -> Resource | None:
    """The STU3 resource a Reference points at: contained (``#id``) or fetched (``Type/id``).

    A reference that cannot be resolved is a finding about ``container`` (the resource that
    holds the reference).
    """
    if not isinstance(reference, dict):
        return None
    ref = reference.get("reference")
    if not isinstance(ref, str) or not ref:
        return None
    if ref.startswith("#"):
        for item in container.get("contained") or ():
            if isinstance(item, dict) and item.get("id") == ref[1:]:
                return item
        ctx.issue(
            "unresolved-reference",
            "a contained reference names no contained resource",
            about=type_of(container),
        )
        return None
    key = relative_reference(ref)
    if key is None:
        return None
    found = ctx.resolved.get(key)
    if found is None and key.split("/", 1)[0] in ("Organization", "Practitioner"):
        ctx.issue(
            "unresolved-reference",
            f"a referenced {key.split('/', 1)[0]} was not found",
            about=type_of(container),
        )
    return found


def relative_reference(ref: str) -> str | None:
    """``Type/id`` from a relative or absolute literal reference (history suffix dropped)."""
    parts = ref.split("/_history/", 1)[0].rstrip("/").split("/")
    if len(parts) < 2 or not parts[-2][:1].isupper():
        return None
    return f"{parts[-2]}/{parts[-1]}"


# Where the conversion looks up Organizations and Practitioners (nothing else is fetched, so
# a reference the conversion would drop anyway can never fail a fetch).
_REFERENCE_PATHS: dict[str, tuple[tuple[str, ...], ...]] = {
    "Patient": (("generalPractitioner",), ("managingOrganization",)),
    "CarePlan": (("author",), ("activity", "detail", "performer")),
    "CareTeam": (
        ("participant", "member"),
        ("participant", "onBehalfOf"),
        ("managingOrganization",),
    ),
}


def external_references(raw: Resource) -> set[str]:
    """The relative ``Organization/x`` / ``Practitioner/x`` references the conversion resolves.

    Contained (``#id``) and absolute references are not fetched: an absolute URL may name
    another server, and the source's bearer token must not travel there.
    """
    found: set[str] = set()

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, path)
        elif isinstance(node, dict):
            if path:
                walk(node.get(path[0]), path[1:])
                return
            ref = node.get("reference")
            if isinstance(ref, str) and "://" not in ref and not ref.startswith("#"):
                key = relative_reference(ref)
                if key and key.split("/", 1)[0] in ("Organization", "Practitioner"):
                    found.add(key)

    for path in _REFERENCE_PATHS.get(str(raw.get("resourceType")), ()):
        walk(raw, path)
    return found


def organisation_ref(org: Resource) -> Resource | None:
    """``{identifier: ODS, display}`` for an STU3 Organization (no literal reference)."""
    out: Resource = {}
    for ident in org.get("identifier") or ():
        if ident.get("system") == ukcore.ODS_ORGANISATION_SYSTEM and ident.get("value"):
            out["identifier"] = ukcore.ods_identifier(ident["value"])
            break
    if org.get("name"):
        out["display"] = org["name"]
    return out or None


def practitioner_ref(practitioner: Resource) -> Resource | None:
    """``{identifier, display}`` for an STU3 Practitioner (SDS user id preferred)."""
    out: Resource = {}
    idents = [i for i in practitioner.get("identifier") or () if i.get("value")]
    idents.sort(key=lambda i: i.get("system") != SDS_USER_SYSTEM)
    if idents:
        out["identifier"] = copy_keys(idents[0], ("system", "value"))
    names = practitioner.get("name") or ()
    if names:
        display = human_name_text(names[0])
        if display:
            out["display"] = display
    return out or None


def human_name_text(name: Resource) -> str:
    if name.get("text"):
        return str(name["text"])
    parts = [*(name.get("prefix") or ()), *(name.get("given") or ())]
    if name.get("family"):
        parts.append(name["family"])
    return " ".join(str(p) for p in parts)


def logical_ref(reference: Any, container: Resource, ctx: Context) -> Resource | None:
    """An R4 logical reference (identifier + display) for an Organization or Practitioner.

    We do not serve the source's Organizations and Practitioners, so a literal reference
    would dangle; the identifier (ODS code, SDS user id) is what other systems understand.
    """
    target = find_target(reference, container, ctx)
    out: Resource | None = None
    if target is not None:
        kind = target.get("resourceType")
        if kind == "Organization":
            out = organisation_ref(target)
        elif kind == "Practitioner":
            out = practitioner_ref(target)
        if out is not None:
            out = {"type": kind, **out}
    if out is None and isinstance(reference, dict):
        out = copy_keys(reference, ("display",))
        ident = reference.get("identifier")
        if isinstance(ident, dict) and ident.get("value"):
            out = {**(out or {}), "identifier": copy_keys(ident, ("system", "value"))}
    return out
