"""Which scopes a token gets: what was asked ∩ what the client may have ∩ what the role allows.

Two steps, both pure:

* :func:`registered_subset` — the asked scopes a client's registration covers. A resource
  scope is covered by a registered one of the same context whose resource type is the same
  or ``*`` and whose permissions include the asked ones (``user/*.rs`` covers
  ``user/CarePlan.rs``, not ``user/CarePlan.cruds``). Any other scope (``launch``,
  ``openid``, ``fhirUser``, ``launch/patient``) must be registered as it is.
* :func:`allowed_for_role` — the resource scopes narrowed to what the access policy lets the
  role see (its level's resource types, plus ``Consent`` when it may record directives and
  ``AuditEvent`` when it may read the audit trail). ``user/*.rs`` for a Nurse becomes
  ``user/Patient.rs user/CareTeam.rs user/CarePlan.rs ...``: the token then says honestly
  what the holder can reach. A role the policy does not name gets no resource scope.

A granted scope never exceeds what was asked: both steps only ever remove or narrow.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from consent import Policy
from gateway.auth import Scope, parse_scope

SMART_SCOPES: tuple[str, ...] = (
    "openid",
    "fhirUser",
    "launch",
    "launch/patient",
    "profile",
)
RESOURCE_SCOPE_EXAMPLES: tuple[str, ...] = (
    "user/*.rs",
    "user/Patient.rs",
    "user/CarePlan.rs",
    "user/Consent.cruds",
    "user/AuditEvent.rs",
    "patient/*.rs",
    "system/*.rs",
    "system/launch.c",
)


def _letters(scope: Scope) -> str:
    return "".join(c for c in "cruds" if c in scope.permissions)


def _covers(registered: Scope, asked: Scope) -> bool:
    return (
        registered.context == asked.context
        and registered.resource_type in ("*", asked.resource_type)
        and asked.permissions <= registered.permissions
    )


def registered_subset(asked: Iterable[str], registered: Sequence[str]) -> list[str]:
    """The asked scopes (in asked order, without repeats) that ``registered`` covers."""
    parsed = [p for p in (parse_scope(s) for s in registered) if p is not None]
    granted: list[str] = []
    for text in asked:
        if text in granted:
            continue
        wanted = parse_scope(text)
        if wanted is None:
            if text in registered:
                granted.append(text)
        elif any(_covers(r, wanted) for r in parsed):
            granted.append(text)
    return granted


def role_resource_types(policy: Policy, role: str | None, *, system: bool = False) -> set[str]:
    """The resource types the policy lets this role (or system clients) reach; ``*`` for all."""
    rule = policy.system_clients if system else policy.roles.get(role or "")
    if rule is None:
        return set()
    types = set(policy.level_spec(rule.level).resource_types)
    if rule.may_record_directives:
        types.add("Consent")
    if rule.may_read_audit:
        types.add("AuditEvent")
    return types


def allowed_for_role(scopes: Iterable[str], allowed_types: set[str]) -> list[str]:
    """Narrow the resource scopes to ``allowed_types`` (see the module docstring)."""
    granted: list[str] = []
    for text in scopes:
        scope = parse_scope(text)
        if scope is None:
            if text not in granted:
                granted.append(text)
            continue
        if scope.resource_type == "*" and "*" not in allowed_types:
            narrowed = [f"{scope.context}/{t}.{_letters(scope)}" for t in sorted(allowed_types)]
        elif (
            scope.resource_type == "*"
            or scope.resource_type in allowed_types
            or ("*" in allowed_types)
        ):
            narrowed = [text]
        else:
            narrowed = []
        granted.extend(s for s in narrowed if s not in granted)
    return granted


def has_resource_scope(scopes: Iterable[str], context: str) -> bool:
    return any((p := parse_scope(s)) is not None and p.context == context for s in scopes)
