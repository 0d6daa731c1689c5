"""What every adapter's mapping shares: the source it speaks for, the findings it collects,
and the one rule for a resource that fails UK Core validation.

**A resource that fails UK Core validation is left out, not fatal.** :func:`keep_valid`
validates a resource where it is born; when it fails, the resource is dropped and a
``DataIssue`` ``invalid-resource`` names its type (never a value), and the rest of the
source's record is still shown. One odd care plan must not hide a person's other plans,
care team and demographics from a clinician, while a partial answer that says so is what
``specs/behaviour.md`` already gives for a failed source. Each adapter applies the rule with
its own dependants: a plan's Goals leave with it, and a Patient that fails takes everything
made for that person with it (no resource may point at a Patient that is not there). Only
when no person is left is the source's answer ``bad-data``.

Content the source's own format already refuses (a STU3 resource its model rejects) is a
different matter: the source broke its interface, and the community adapter answers
``bad-data`` for the whole source, as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from adapters import ukcore
from adapters.base import DataIssue, Domain
from adapters.validation import UKCoreValidationError, validate_resource

__all__ = ["MappingContext", "is_labelled", "keep_valid", "make_provenance"]


@dataclass(slots=True)
class MappingContext:
    """What every mapping needs to know about the source, and where findings are collected.

    Each adapter's ``Context`` adds what its own mapping needs (the social care source's
    display name, the community source's resolved references).
    """

    source: str
    organisation: str
    domain: Domain
    issues: list[DataIssue] = field(default_factory=list)

    def issue(self, code: str, text: str, *, about: str | None, labelled: bool = False) -> None:
        """Record a finding once; ``about`` is the resource type it concerns, ``labelled`` that
        it is a confidentiality-labelled resource left out here (:class:`DataIssue`)."""
        found = DataIssue(code, text, about, labelled)
        if found not in self.issues:
            self.issues.append(found)

    def organisation_reference(self) -> dict[str, Any]:
        """The source organisation as the body of a ``Reference``, by ODS code."""
        return {"identifier": ukcore.ods_identifier(self.organisation)}


def make_provenance(
    ctx: MappingContext,
    provenance_id: str,
    targets: Sequence[Mapping[str, Any]],
    recorded: datetime,
) -> dict[str, Any]:
    """The one UK Core Provenance per source person: the source organisation
    (:meth:`MappingContext.organisation_reference`) authored ``targets``."""
    return ukcore.author_provenance(
        provenance_id,
        ukcore.resource_meta(ukcore.PROFILE_PROVENANCE, ctx.source, ctx.domain),
        targets,
        recorded,
        ctx.organisation_reference(),
    )


def is_labelled(resource: Mapping[str, Any]) -> bool:
    """Whether ``resource`` carries a restricting confidentiality label (R or V)."""
    meta = resource.get("meta")
    labels = meta.get("security") if isinstance(meta, Mapping) else None
    return any(
        isinstance(label, Mapping)
        and label.get("system") == ukcore.CONFIDENTIALITY_SYSTEM
        and label.get("code") in ("R", "V")
        for label in labels or ()
    )


def keep_valid(resource: Mapping[str, Any], ctx: MappingContext) -> bool:
    """Validate ``resource`` where it is born: ``True`` to keep it; ``False`` when it failed,
    after reporting it (by resource type only) on ``ctx``."""
    try:
        validate_resource(resource)
    except UKCoreValidationError:
        kind = resource.get("resourceType")
        ctx.issue(
            "invalid-resource",
            f"a {kind} failed UK Core validation and was left out",
            about=kind if isinstance(kind, str) else None,
            labelled=is_labelled(resource),
        )
        return False
    return True
