"""Each joint plan's custodian is its author organisation: split the ``joint`` answer by it.

The decision knows one custodian per source contribution (the source's data controller),
and a person's directives name custodians: "do not share what F81001 holds" withholds the
source F81001 controls. A joint plan is held by the gateway but belongs to the organisation
that wrote it, so before deciding, :func:`split` turns the ``joint`` source's answer into
one answer per author organisation (``joint:{ods}``, that organisation as custodian, each
plan with its Provenance); after deciding, :func:`join` puts what may be shown back into
one ``joint`` answer for the merge. So a directive about an organisation applies to the
joint plans it authored exactly as to the records its own system holds — and it still sees
its own plans, as it still sees its own system's records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from adapters.base import Domain, Outcome, Resource, SourceResult
from consent.model import reference_key
from gateway.joint.rules import JOINT_SOURCE
from gateway.joint.source import JOINT_ORGANISATION
from gateway.records.access import Verdict

_PREFIX = f"{JOINT_SOURCE}:"


def _author(plan: Resource) -> str:
    ident = (plan.get("author") or {}).get("identifier") or {}
    return str(ident.get("value") or "unknown")


def _domain(plan: Resource) -> Domain:
    for tag in plan.get("meta", {}).get("tag", ()):
        if tag.get("system") == "urn:caregateway:care-domain" and tag.get("code") in (
            "health",
            "social-care",
        ):
            code: Domain = tag["code"]
            return code
    return "health"


def split(results: Sequence[SourceResult]) -> list[SourceResult]:
    """``results`` with the ``joint`` answer replaced by one answer per author organisation."""
    out: list[SourceResult] = []
    for result in results:
        if result.source != JOINT_SOURCE or result.outcome is not Outcome.FOUND:
            out.append(result)
            continue
        plans = [r for r in result.resources if r.get("resourceType") == "CarePlan"]
        owner = {f"CarePlan/{p['id']}": _author(p) for p in plans}
        groups: dict[str, list[Resource]] = {}
        domains: dict[str, Domain] = {}
        for plan in plans:
            groups.setdefault(_author(plan), []).append(plan)
            domains.setdefault(_author(plan), _domain(plan))
        for resource in result.resources:
            if resource.get("resourceType") == "Provenance":
                targets = [reference_key(t) for t in resource.get("target", ())]
                org = next((owner[t] for t in targets if t in owner), None)
                if org is not None:
                    groups[org].append(resource)
        for org, resources in groups.items():
            out.append(
                replace(
                    result,
                    source=f"{_PREFIX}{org}",
                    organisation=org,
                    domain=domains[org],
                    resources=tuple(resources),
                    issues=(),
                )
            )
    return out


def join(verdict: Verdict) -> Verdict:
    """The verdict with every ``joint:{ods}`` answer put back into one ``joint`` answer."""
    parts = [r for r in verdict.visible if r.source.startswith(_PREFIX)]
    if not parts:
        return verdict
    others = [r for r in verdict.visible if not r.source.startswith(_PREFIX)]
    plans = [x for r in parts for x in r.resources if x.get("resourceType") == "CarePlan"]
    rest = [x for r in parts for x in r.resources if x.get("resourceType") != "CarePlan"]
    joined = SourceResult(
        JOINT_SOURCE,
        JOINT_ORGANISATION,
        parts[0].domain,
        Outcome.FOUND,
        resources=(*plans, *rest),
        fetched_at=parts[0].fetched_at,
    )
    return replace(verdict, visible=(*others, joined))
