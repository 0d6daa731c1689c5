"""What the test packages share, so each conftest keeps only what is its own.

* :mod:`tests.support.people` — the simulators' scenario people (NHS numbers) and organisations.
* :mod:`tests.support.tokens` — signed access tokens as the gateway's issuer would make them.
* :mod:`tests.support.fhir` — assertions on FHIR answers and OperationOutcomes.
* :mod:`tests.support.processes` — child processes stopped by their own PIDs.
* :mod:`tests.support.demo` — a real ``caregateway demo`` child and tokens from its launches.
* :mod:`tests.support.browser` — headless Chromium through Playwright and the axe-core check.

The gateway served in a test's event loop (``running_gateway``) stays in
``tests/gateway/harness.py``: the one place a test builds the gateway's state and app.
"""
