"""HTTP routes, one module per FHIR resource type or concern."""
