"""The Caldicott access policy: a YAML file an IG lead can read, validated at start-up.

Usage::

    policy = load_policy()                      # the packaged default_policy.yaml
    policy = load_policy(settings.policy_file)  # a site's own copy (CAREGW_POLICY_FILE)
    rule = policy.rule_for(requester)           # None: the role is unknown -> deny

An invalid file raises :class:`PolicyError` whose message lists every problem with its
location (``roles.R8000.purposes.1: 'TRET' is not a PurposeOfUse code ...``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from consent.model import ClientKind, Level, Requester
from vocabulary import BREAK_GLASS_PURPOSE as BREAK_GLASS_PURPOSE  # re-exported
from vocabulary import IG_PURPOSE as IG_PURPOSE
from vocabulary import PATIENT_PURPOSE as PATIENT_PURPOSE
from vocabulary import PURPOSES_OF_USE as PURPOSES_OF_USE

Domain = Literal["health", "social-care"]
DOMAINS: tuple[str, ...] = ("health", "social-care")

Label = Literal["U", "L", "M", "N", "R", "V"]
"""HL7 v3 Confidentiality codes."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LevelSpec(_Frozen):
    description: str = ""
    resource_types: tuple[str, ...] = ()

    def allows(self, resource_type: str) -> bool:
        return "*" in self.resource_types or resource_type in self.resource_types


class RoleRule(_Frozen):
    """What one role may do. Its fields are the columns of the policy table."""

    name: str = ""
    level: Level
    purposes: tuple[str, ...] = Field(min_length=1)
    sees_labels: dict[Domain, tuple[Label, ...]] = Field(default_factory=dict)
    may_record_directives: bool = False
    may_read_audit: bool = False
    directives_without_relationship: bool = False
    """Information governance work: with purpose ``HOPERAT`` this role may read and record
    anyone's directives without a legitimate relationship (it still needs
    ``may_record_directives``, and is still refused a directive refusing its organisation)."""
    contribute: bool = False
    """May write joint care plans (create and update) for a person it has a legitimate
    relationship with (:mod:`consent.plan_write`). Needs ``care_domain``."""
    care_domain: Domain | None = None
    """The care domain a plan this role writes belongs to (its ``care-domain`` tag)."""
    read_summaries: bool = False
    """May read counts-only summaries of joint care (``$joint-care-summary``) under
    ``HOPERAT``; never a person's record."""

    @model_validator(mode="after")
    def _contributor_has_domain(self) -> RoleRule:
        if self.contribute and self.care_domain is None:
            raise ValueError("a role that may contribute needs a care_domain")
        return self

    @field_validator("purposes")
    @classmethod
    def _known_purposes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [p for p in value if p not in PURPOSES_OF_USE]
        if bad:
            raise ValueError(
                f"{', '.join(repr(b) for b in bad)} is not a PurposeOfUse code "
                "(e.g. TREAT, ETREAT, CAREMGT, HOPERAT)"
            )
        return value

    def allows_purpose(self, purpose: str) -> bool:
        return purpose in self.purposes

    def sees_label(self, domain: str, label: str) -> bool:
        return label in self.sees_labels.get(domain, ())  # type: ignore[call-overload]


class BreakGlass(_Frozen):
    overrides_objection: bool = True
    overrides_recipient_refusal: bool = True
    duration_minutes: int = Field(default=60, gt=0, le=24 * 60)

    @property
    def duration(self) -> timedelta:
        return timedelta(minutes=self.duration_minutes)


ProofingLevel = Literal["P0", "P5", "P9"]
PROOFING_RANK: dict[str, int] = {"P0": 0, "P5": 1, "P9": 2}


class Coding(_Frozen):
    """A code in a code system: a security label or a category the policy names."""

    system: str = Field(min_length=1)
    code: str = Field(min_length=1)


class PatientProofing(_Frozen):
    """The NHS login identity proofing level the person needs for each kind of access."""

    care_data: ProofingLevel = "P9"
    access_log: ProofingLevel = "P9"
    directives: ProofingLevel = "P5"
    change_directives: ProofingLevel = "P9"


class PatientAccessLog(_Frozen):
    staff_names: bool = False
    """Whether the person's view of who looked at their record names the member of staff
    (the token's ``name``); by default it shows the organisation and role only."""


class PatientRule(_Frozen):
    """What the person themself may see of their own record (``client_kind`` ``patient``).

    ``resource_types`` and ``sees_labels`` work as for a role. ``withhold_labels`` are
    security labels (``system`` + ``code``) that withhold a resource from the person
    whatever else it carries (``v3-ActCode#NOPAT``); ``withhold_restricted_categories``
    withhold a resource of one of these categories when it is labelled restricted (``R``
    or ``V``) — restricted safeguarding records. What is withheld is never announced.
    """

    name: str = "The person themself"
    purposes: tuple[str, ...] = (PATIENT_PURPOSE,)
    resource_types: tuple[str, ...] = Field(min_length=1)
    sees_labels: dict[Domain, tuple[Label, ...]] = Field(default_factory=dict)
    withhold_labels: tuple[Coding, ...] = ()
    withhold_restricted_categories: tuple[Coding, ...] = ()
    proofing: PatientProofing = PatientProofing()
    access_log: PatientAccessLog = PatientAccessLog()

    @field_validator("purposes")
    @classmethod
    def _known_purposes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [p for p in value if p not in PURPOSES_OF_USE]
        if bad:
            raise ValueError(f"{', '.join(repr(b) for b in bad)} is not a PurposeOfUse code")
        return value

    def allows_purpose(self, purpose: str) -> bool:
        return purpose in self.purposes

    def allows_type(self, resource_type: str) -> bool:
        return "*" in self.resource_types or resource_type in self.resource_types

    def sees_label(self, domain: str, label: str) -> bool:
        return label in self.sees_labels.get(domain, ())  # type: ignore[call-overload]


class Policy(_Frozen):
    version: str = Field(min_length=1)
    levels: dict[Level, LevelSpec]
    roles: dict[str, RoleRule]
    system_clients: RoleRule
    break_glass: BreakGlass = BreakGlass()
    patient: PatientRule | None = None
    """The person's own access; without this section the person themself sees nothing."""

    @model_validator(mode="after")
    def _levels_defined(self) -> Policy:
        used = {r.level for r in self.roles.values()} | {self.system_clients.level}
        missing = sorted(str(level) for level in used if level not in self.levels)
        if missing:
            raise ValueError(f"levels used by roles but not defined: {', '.join(missing)}")
        for code in self.roles:
            if not code or code != code.strip() or " " in code:
                raise ValueError(f"role code {code!r} must be a non-empty code without spaces")
        return self

    def rule_for(self, requester: Requester) -> RoleRule | None:
        """The rule for a requester: system clients by ``client_kind``, users by role.
        ``None`` for the person themself: their access is :attr:`patient`, not a role."""
        if requester.client_kind == ClientKind.SYSTEM:
            return self.system_clients
        if requester.client_kind == ClientKind.PATIENT:
            return None
        if requester.role is None:
            return None
        return self.roles.get(requester.role)

    def may_record_directives(self, requester: Requester) -> bool:
        """Whether the requester may create or change consent directives (else ``403``)."""
        rule = self.rule_for(requester)
        return rule is not None and rule.may_record_directives

    def may_read_audit(self, requester: Requester) -> bool:
        """Whether the requester may read the audit trail (IG roles)."""
        rule = self.rule_for(requester)
        return rule is not None and rule.may_read_audit

    def may_contribute(self, requester: Requester) -> bool:
        """Whether the requester's role may write joint care plans at all."""
        rule = self.rule_for(requester)
        return rule is not None and rule.contribute

    def level_spec(self, level: Level) -> LevelSpec:
        return self.levels[level]


class PolicyError(ValueError):
    """The policy file cannot be used; the message says where and why."""


def parse_policy(data: Mapping[str, Any], origin: str = "policy") -> Policy:
    """Validate an already-parsed policy document."""
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"  {loc}: {msg}")
        raise PolicyError(f"{origin} is not a valid access policy:\n" + "\n".join(lines)) from exc


def load_policy(path: str | Path | None = None) -> Policy:
    """Read and validate a policy file; ``None`` means the packaged default."""
    if path is None:
        origin = "consent/default_policy.yaml"
        text = resources.files("consent").joinpath("default_policy.yaml").read_text("utf-8")
    else:
        origin = str(path)
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise PolicyError(f"cannot read policy file {origin}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{origin} is not valid YAML: {exc}") from exc
    if not isinstance(data, Mapping):
        raise PolicyError(f"{origin} must be a YAML mapping with version, levels, roles, ...")
    return parse_policy(data, origin)
