"""The community health source (``community-fhir-stu3``) as a :class:`SourceAdapter`.

* :mod:`.client` — HTTP: bearer token, searchset paging, status mapping, one ``Retry-After``
  retry;
* :mod:`.mapping` — pure functions from the source's STU3 (CareConnect) resources to UK Core
  R4 (Patient in :mod:`._patient`, CarePlan and CareTeam in :mod:`._care`, the context and
  shared helpers in :mod:`._common`);
* :mod:`.adapter` — :class:`CommunityAdapter`, the rounds of one fetch.
"""

from adapters.community.adapter import CommunityAdapter

__all__ = ["CommunityAdapter"]
