"""Who may see what: the consent decider and the stores it decides on.

* :mod:`~gateway.policy.decision` — :class:`PolicyDecider`, the gateway's
  :class:`~gateway.records.Decider`: the person's stored directives and the caller's latest
  break-glass grant, through the pure :mod:`consent` policy, give a
  :class:`~gateway.records.Verdict`; :func:`authorise_directives` does the same for the
  Consent API;
* :mod:`~gateway.policy.store` — where directives (:class:`ConsentStore`, every version kept)
  and break-glass grants (:class:`BreakGlassStore`) live;
* :mod:`~gateway.policy.hot_reads` — :class:`HotReads`, the one query per request that reads
  both for the decision, read fresh so a withdrawal applies to the very next request.
"""

from __future__ import annotations

from gateway.policy.decision import (
    BreakGlassLedger,
    DirectiveSource,
    PolicyDecider,
    authorise_directives,
    contributions,
    requester,
    to_verdict,
    visible_issues,
)
from gateway.policy.hot_reads import HotReads
from gateway.policy.store import (
    BreakGlassGrantRow,
    BreakGlassStore,
    ConsentDirectiveRow,
    ConsentStore,
    ConsentVersionRow,
    fhir_instant,
)

__all__ = [
    "BreakGlassGrantRow",
    "BreakGlassLedger",
    "BreakGlassStore",
    "ConsentDirectiveRow",
    "ConsentStore",
    "ConsentVersionRow",
    "DirectiveSource",
    "HotReads",
    "PolicyDecider",
    "authorise_directives",
    "contributions",
    "fhir_instant",
    "requester",
    "to_verdict",
    "visible_issues",
]
