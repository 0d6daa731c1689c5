"""FHIR R4 wire format: responses, Bundles, OperationOutcome entries, CapabilityStatement."""
