"""The read path's record: fetch every source's part, gate it per source, merge what is left.

A person's record is read in one order of steps, and each step lives in its own module:

* :mod:`~gateway.records.service` — :class:`RecordService` asks every source adapter at
  once, through the cache, and remembers how each source has answered lately
  (:class:`SourceHealth`, for readiness);
* :mod:`~gateway.records.access` — :class:`RecordAccess`, the one door routes use for
  anything about a person: fetch → decide (a :class:`Decider` gives a :class:`Verdict` for a
  :class:`RequestContext`) → merge, so no route can skip the decision;
* :mod:`~gateway.records.merge` — pure functions that make one record (one Patient per NHS
  number) out of what the decision left visible.

The decider itself is policy, not record: see :mod:`gateway.policy`.
"""

from __future__ import annotations

from gateway.records.access import (
    NO_RELATIONSHIP,
    NOT_OWN_RECORD,
    SOURCE_UNAVAILABLE,
    AccessResult,
    Decider,
    RecordAccess,
    RequestContext,
    Verdict,
    outage_behind,
    own_record_only,
    permit_all,
)
from gateway.records.merge import (
    DEMOGRAPHICS_CONFLICT,
    MERGE_WARNING_SYSTEM,
    MergedRecord,
    MergeWarning,
    merge,
    merge_patient,
)
from gateway.records.service import RecordService, ResultCache, SourceHealth

__all__ = [
    "DEMOGRAPHICS_CONFLICT",
    "MERGE_WARNING_SYSTEM",
    "NOT_OWN_RECORD",
    "NO_RELATIONSHIP",
    "SOURCE_UNAVAILABLE",
    "AccessResult",
    "Decider",
    "MergeWarning",
    "MergedRecord",
    "RecordAccess",
    "RecordService",
    "RequestContext",
    "ResultCache",
    "SourceHealth",
    "Verdict",
    "merge",
    "merge_patient",
    "outage_behind",
    "own_record_only",
    "permit_all",
]
