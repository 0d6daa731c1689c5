"""The community health source: a read-only FHIR STU3 (CareConnect) API, normalised to UK Core R4.

``client`` speaks HTTP to the source, ``convert`` is the pure STU3 → R4 conversion and
``adapter`` puts them together behind :class:`adapters.base.SourceAdapter`.
"""
