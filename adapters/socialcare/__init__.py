"""The council adult social care source (``social-care-api``) as a :class:`SourceAdapter`.

* :mod:`.client` — HTTP: API key, cursor paging, status mapping, one ``Retry-After`` retry;
* :mod:`.mapping` — pure functions from the vendor's JSON to UK Core R4 resources (Person
  → Patient in :mod:`._patient`, SupportPlan and Involvement in :mod:`._care`, the context
  and shared helpers in :mod:`._common`);
* :mod:`.adapter` — :class:`SocialCareAdapter`, the rounds of one fetch, and its change feed.
"""

from adapters.socialcare.adapter import SocialCareAdapter

__all__ = ["SocialCareAdapter"]
