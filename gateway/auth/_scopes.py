"""SMART on FHIR scopes: parsing (v2 and v1 forms) and the scope check for an interaction.

Accepted forms (``context/ResourceType.permissions``)::

    user/CarePlan.rs        v2: c(reate) r(ead) u(pdate) d(elete) s(earch), in that order
    system/Patient.rs
    user/*.cruds            any resource type
    user/CarePlan.read      v1: read   == rs
    user/*.write            v1: write  == cud
    user/*.*                v1: *      == cruds

Which context counts is explicit: ``user/`` scopes grant only to ``client_kind == "user"``
principals, ``system/`` scopes only to ``client_kind == "system"`` and ``patient/`` scopes only
to ``client_kind == "patient"`` — the person themself, whose token binds them to one NHS
number (the record service refuses any other: ``not-own-record``). A ``patient/`` scope in a
staff token grants nothing: it would not say whose record. Scopes the gateway does not
understand (``openid``, ``launch``, ``fhirUser``, malformed strings) and v2 scopes with query
constraints
(``patient/Observation.rs?category=...``) are ignored — they never widen access.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from gateway.errors import Forbidden
from vocabulary import Interaction as Interaction  # re-exported

if TYPE_CHECKING:
    from gateway.auth._principal import Principal

ScopeContext = Literal["patient", "user", "system"]

#: FHIR ``restful-interaction`` → the SMART v2 permission letter that allows it.
INTERACTION_LETTER: dict[str, str] = {
    "create": "c",
    "read": "r",
    "update": "u",
    "delete": "d",
    "search": "s",
}
_V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": "cruds"}
_SCOPE = re.compile(
    r"(?P<context>patient|user|system)/(?P<type>\*|[A-Z][A-Za-z]{0,63})\.(?P<perm>[A-Za-z*]+)"
)
_V2_PERMISSIONS = re.compile(r"c?r?u?d?s?")


@dataclass(frozen=True, slots=True)
class Scope:
    """One parsed scope: its context, resource type (or ``*``) and permission letters."""

    context: ScopeContext
    resource_type: str
    permissions: frozenset[str]

    def covers(self, resource_type: str, interaction: Interaction) -> bool:
        """Whether this scope alone allows ``interaction`` on ``resource_type``."""
        return (
            self.resource_type in ("*", resource_type)
            and INTERACTION_LETTER[interaction] in self.permissions
        )

    def __str__(self) -> str:
        letters = "".join(c for c in "cruds" if c in self.permissions)
        return f"{self.context}/{self.resource_type}.{letters}"


def parse_scope(text: str) -> Scope | None:
    """Parse one scope string; ``None`` when it is not a resource scope the gateway knows."""
    m = _SCOPE.fullmatch(text)
    if m is None:
        return None
    perm = m["perm"]
    letters = _V1_PERMISSIONS.get(perm)
    if letters is None:
        if not perm or _V2_PERMISSIONS.fullmatch(perm) is None:
            return None
        letters = perm
    context: ScopeContext = m["context"]  # type: ignore[assignment]  # the regex limits it
    return Scope(context=context, resource_type=m["type"], permissions=frozenset(letters))


def parse_scopes(value: str | Iterable[str]) -> frozenset[Scope]:
    """Parse a space-separated ``scope`` claim (or a list of scope strings)."""
    items = value.split() if isinstance(value, str) else value
    parsed = (parse_scope(s) for s in items if isinstance(s, str))
    return frozenset(s for s in parsed if s is not None)


def granting_context(principal: Principal) -> ScopeContext:
    """The scope context that counts for this principal (``user``, ``system``, ``patient``)."""
    if principal.client_kind == "system":
        return "system"
    return "patient" if principal.client_kind == "patient" else "user"


def has_scope(principal: Principal, resource_type: str, interaction: Interaction) -> bool:
    """Whether any of the principal's scopes, in its own context, covers the interaction."""
    if interaction not in INTERACTION_LETTER:
        return False
    context = granting_context(principal)
    return any(
        s.context == context and s.covers(resource_type, interaction) for s in principal.scopes
    )


def require_scope(principal: Principal, resource_type: str, interaction: Interaction) -> None:
    """Raise ``Forbidden`` (reason ``scope-insufficient``) unless a scope covers the interaction."""
    if not has_scope(principal, resource_type, interaction):
        context = granting_context(principal)
        raise Forbidden(
            f"The access token's scopes do not allow '{interaction}' on {resource_type} "
            f"(a {context}/ scope is needed).",
            reasons=["scope-insufficient"],
        )
