"""The values an access decision is made from and made of.

Everything here is immutable so that a :class:`Decision` can be logged, audited, cached for
the length of one request and compared in tests without anyone changing it on the way.

Vocabulary (FHIR codes kept as plain strings at the edge):

- :class:`Requester` — who is asking (the verified token's claims, plus the break-glass
  header).
- :class:`SourceContribution` — what one source system holds about the person, already
  normalised to R4 dicts by its adapter. Decisions are applied per source *before* merging.
- :class:`Decision` — effect, reason codes, what was withheld (for the audit trail, never for
  the caller) and the rule that matched.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# The shared words, re-exported: consent's callers import them from here.
from vocabulary import CARE_DOMAIN_SYSTEM as CARE_DOMAIN_SYSTEM
from vocabulary import CONFIDENTIALITY_SYSTEM as CONFIDENTIALITY_SYSTEM
from vocabulary import NHS_NUMBER_SYSTEM as NHS_NUMBER_SYSTEM
from vocabulary import ODS_SYSTEM as ODS_SYSTEM
from vocabulary import REASON_SYSTEM as REASON_SYSTEM
from vocabulary import ClientKind as ClientKind
from vocabulary import Effect as Effect

Resource = Mapping[str, Any]
"""A FHIR R4 resource as a plain JSON dict."""



class Reason(enum.StrEnum):
    """Reason codes (system :data:`REASON_SYSTEM`), safe to show the caller."""

    NO_LEGITIMATE_RELATIONSHIP = "no-legitimate-relationship"
    PATIENT_OBJECTED = "patient-objected"
    SOURCE_WITHHELD_BY_PATIENT = "source-withheld-by-patient"
    RECIPIENT_REFUSED_BY_PATIENT = "recipient-refused-by-patient"
    LABEL_RESTRICTED = "label-restricted"
    ROLE_NOT_PERMITTED = "role-not-permitted"
    PURPOSE_NOT_PERMITTED = "purpose-not-permitted"
    PURPOSE_MISSING = "purpose-missing"
    BREAK_GLASS = "break-glass"
    LEVEL_DEMOGRAPHICS_ONLY = "level-demographics-only"
    NOT_OWN_RECORD = "not-own-record"
    """The person themself asked for someone else's record (or directives, or audit trail)."""
    PROOFING_INSUFFICIENT = "identity-proofing-insufficient"
    """The person's NHS login identity is not proven to the level this needs (e.g. P9)."""
    WITHHELD_FROM_PATIENT = "withheld-from-patient"
    """For the audit trail only: never told to the person (see :mod:`consent.patient`)."""


class Level(enum.StrEnum):
    """How much of a person's record a role may see (minimum necessary)."""

    NONE = "none"
    DEMOGRAPHICS = "demographics"
    CARE = "care"
    FULL = "full"


@dataclass(frozen=True, slots=True)
class Requester:
    """Who is asking: the token's ``sub``, ``role``, ``org`` and ``client_kind`` claims.

    ``break_glass_reason`` is the ``X-Break-Glass-Reason`` header (free text). It only
    counts together with purpose ``ETREAT``. For the person themself (``client_kind``
    ``patient``) ``org`` and ``role`` are ``None``; ``patient`` is their own NHS number and
    ``proofing_level`` NHS login's ``identity_proofing_level`` (``P0``, ``P5``, ``P9``).
    """

    sub: str
    role: str | None
    org: str | None
    client_kind: ClientKind = ClientKind.USER
    break_glass_reason: str | None = None
    patient: str | None = None
    proofing_level: str | None = None


@dataclass(frozen=True, slots=True)
class SourceContribution:
    """One source's part of a person's record.

    ``custodian`` is the ODS code of the organisation configured for the source (the data
    controller); ``domain`` is ``health`` or ``social-care``, used when a resource has no
    ``urn:caregateway:care-domain`` tag of its own.
    """

    source: str
    custodian: str
    domain: str
    resources: tuple[Resource, ...] = ()


@dataclass(frozen=True, slots=True)
class Withheld:
    """One thing the decision removed, and why.

    ``key`` is ``"{resourceType}/{id}"`` (see :func:`resource_key`) or ``"source:{name}"``
    for a whole source. This is for the audit trail and the IG lead: the caller is only
    ever told the *reason codes*, never the keys nor how many.
    """

    key: str
    reason: Reason
    source: str


def resource_key(resource: Resource, index: int) -> str:
    """``CarePlan/abc``; a resource without an id is keyed by its position in its source."""
    rtype = str(resource.get("resourceType", "Unknown"))
    rid = resource.get("id")
    return f"{rtype}/{rid}" if rid else f"{rtype}#{index}"


def reference_key(ref: Any) -> str | None:
    """``CarePlan/abc`` from a Reference, relative or absolute (``_history`` dropped)."""
    value = ref.get("reference") if isinstance(ref, Mapping) else None
    if not isinstance(value, str) or "/" not in value:
        return None
    parts = value.rstrip("/").split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    return "/".join(parts[-2:])


def _without_withheld_targets(provenance: Resource, withheld: frozenset[str]) -> Resource:
    targets = provenance.get("target")
    if not isinstance(targets, list):
        return provenance
    kept = [t for t in targets if reference_key(t) not in withheld]
    return provenance if len(kept) == len(targets) else {**provenance, "target": kept}


def source_key(source: str) -> str:
    return f"source:{source}"


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of :func:`consent.decide.decide`: data, not behaviour.

    - ``effect``: ``permit`` (everything may be shown), ``permit-filtered`` (some things were
      withheld: tell the caller the ``reasons`` in an ``OperationOutcome``), ``deny`` (answer
      403 with the ``reasons``).
    - ``reasons``: distinct reason codes, in the order the rules ran. ``break-glass`` is among
      them whenever emergency access was used.
    - ``withheld`` / ``withheld_sources``: what was removed — for audit only.
    - ``directives_applied``: ids of the Consent resources that affected this decision
      (including ones break-glass overrode).
    - ``matched_rule``: one line of plain English saying which rule decided, for the IG lead
      and ``$access-check``; it names codes (role, purpose, ODS), never a person.
    - ``announce_withheld``: whether the caller may be told *that* something was withheld
      (a ``suppressed`` outcome, a ``403`` on a direct read). False for the person themself:
      knowing that something is hidden from them can itself cause harm, so what is withheld
      from them is recorded for the audit trail and otherwise behaves as if it did not exist.

    Use :meth:`visible` to get what may be merged and returned.
    """

    effect: Effect
    reasons: tuple[Reason, ...]
    policy_version: str
    matched_rule: str
    withheld: tuple[Withheld, ...] = ()
    withheld_sources: tuple[str, ...] = ()
    directives_applied: tuple[str, ...] = ()
    break_glass: bool = False
    break_glass_reason: str | None = None
    break_glass_until: datetime | None = None
    announce_withheld: bool = True
    _withheld_keys: frozenset[tuple[str, str]] = field(
        default=frozenset(), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        keys = frozenset((w.source, w.key) for w in self.withheld)
        object.__setattr__(self, "_withheld_keys", keys)

    @property
    def permitted(self) -> bool:
        return self.effect is not Effect.DENY

    def visible(
        self, contributions: Iterable[SourceContribution]
    ) -> tuple[SourceContribution, ...]:
        """What may be shown: withheld sources dropped entirely (their ``Patient`` too) and
        withheld resources removed from the rest. Nothing at all when the effect is deny.

        A ``Provenance`` that is kept loses the targets that were withheld (a copy is
        returned; the input is never changed), so it never points at something removed.
        Sources left with no resources are dropped as well, so that a caller merging the
        result cannot learn that a source held something.
        """
        if self.effect is Effect.DENY:
            return ()
        dropped = set(self.withheld_sources)
        out: list[SourceContribution] = []
        for c in contributions:
            if c.source in dropped:
                continue
            removed = frozenset(k for s, k in self._withheld_keys if s == c.source)
            if not removed:  # nothing of this source withheld: it is shown as it is
                if c.resources:
                    out.append(c)
                continue
            kept = tuple(
                _without_withheld_targets(r, removed)
                if r.get("resourceType") == "Provenance"
                else r
                for i, r in enumerate(c.resources)
                if resource_key(r, i) not in removed
            )
            if kept:
                out.append(SourceContribution(c.source, c.custodian, c.domain, kept))
        return tuple(out)

    @property
    def reason_codes(self) -> tuple[str, ...]:
        """The reasons as plain strings, for ``OperationOutcome`` and ``AuditEvent``."""
        return tuple(str(r) for r in self.reasons)
