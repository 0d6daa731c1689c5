"""Access decisions for the shared care record: pure functions, no I/O, no imports of
:mod:`gateway` or :mod:`adapters`.

::

    from consent import Requester, SourceContribution, decide, load_policy, parse_consents

    policy = load_policy(settings.policy_file)          # once, at start-up
    decision = decide(requester, purpose, contributions, parse_consents(stored), policy, now)
    shown = decision.visible(contributions)

    # the Consent API: reading and changing the directives themselves
    decision = decide_directive_access(requester, purpose, DirectiveInteraction.UPDATE,
                                       contributions, {"Consent/x": parse_consent(stored)}, policy)
"""

from consent.decide import decide, in_force, needs_the_time
from consent.directive_access import (
    DirectiveInteraction,
    decide_directive_access,
    directive_role_denial,
    needs_relationship,
)
from consent.directives import (
    Directive,
    DirectiveKind,
    InvalidConsent,
    parse_consent,
    parse_consents,
    validate_consent,
)
from consent.model import (
    REASON_SYSTEM,
    ClientKind,
    Decision,
    Effect,
    Level,
    Reason,
    Requester,
    SourceContribution,
    Withheld,
)
from consent.patient import PatientNeed, is_patient, own_record_denial, patient_denial
from consent.plan_write import (
    PlanInteraction,
    decide_plan_write,
    decide_summary_access,
    plan_write_role_denial,
)
from consent.policy import PatientRule, Policy, PolicyError, RoleRule, load_policy

__all__ = [
    "REASON_SYSTEM",
    "ClientKind",
    "Decision",
    "Directive",
    "DirectiveInteraction",
    "DirectiveKind",
    "Effect",
    "InvalidConsent",
    "Level",
    "PlanInteraction",
    "PatientNeed",
    "PatientRule",
    "Policy",
    "PolicyError",
    "Reason",
    "Requester",
    "RoleRule",
    "SourceContribution",
    "Withheld",
    "decide",
    "in_force",
    "needs_the_time",
    "decide_directive_access",
    "decide_plan_write",
    "decide_summary_access",
    "directive_role_denial",
    "is_patient",
    "load_policy",
    "needs_relationship",
    "own_record_denial",
    "parse_consent",
    "parse_consents",
    "plan_write_role_denial",
    "patient_denial",
    "validate_consent",
]
