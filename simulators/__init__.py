"""Simulated source systems: fake vendor APIs served over real HTTP on loopback.

* :mod:`simulators.population` — the seeded synthetic population and the fixed scenario people;
* :mod:`simulators.socialcare` — the council's adult social care API (``specs/social-care-api.md``);
* :mod:`simulators.community` — the community trust's FHIR STU3 API
  (``specs/community-fhir-stu3.md``);
* :mod:`simulators.control` — the fault-control endpoints both share (latency, failures,
  request counters);
* :mod:`simulators.runner` — start both with uvicorn in the running event loop, and the
  ``simulate-sources`` command.

All data is synthetic: names, addresses and organisations are made up, and every NHS number
is in the ``999`` range that is never issued to people.
"""
