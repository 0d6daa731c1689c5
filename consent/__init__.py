"""Access decisions for the shared care record: pure functions, no I/O, no imports of
:mod:`gateway` or :mod:`adapters`.

::

    from consent import Requester, SourceContribution, decide, load_policy, parse_consents

    policy = load_policy(settings.policy_file)          # once, at start-up
    decision = decide(requester, purpose, contributions, parse_consents(stored), policy, now)
    shown = decision.visible(contributions)
"""

from consent.decide import decide
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
from consent.policy import Policy, PolicyError, RoleRule, load_policy

__all__ = [
    "REASON_SYSTEM",
    "ClientKind",
    "Decision",
    "Directive",
    "DirectiveKind",
    "Effect",
    "InvalidConsent",
    "Level",
    "Policy",
    "PolicyError",
    "Reason",
    "Requester",
    "RoleRule",
    "SourceContribution",
    "Withheld",
    "decide",
    "load_policy",
    "parse_consent",
    "parse_consents",
    "validate_consent",
]
