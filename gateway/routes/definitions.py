"""``/fhir/StructureDefinition/{id}`` and ``/fhir/CodeSystem/{id}``: our own definitions.

Public, like ``/fhir/metadata``: they describe codes and extensions, never a person
(:mod:`gateway.fhir.definitions`).
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from gateway.errors import NotFound
from gateway.fhir.definitions import BY_TYPE
from gateway.fhir.params import check_params
from gateway.fhir.responses import FHIRResponse

router = APIRouter(prefix="/fhir")


def _definition(kind: str, definition_id: str, request: Request) -> FHIRResponse:
    check_params(request, ())
    found = BY_TYPE[kind].get(definition_id)
    if found is None:
        raise NotFound(f"No {kind} with this id; the CapabilityStatement lists ours.")
    return FHIRResponse(found)


@router.get("/StructureDefinition/{definition_id}")
async def read_structure_definition(definition_id: str, request: Request) -> FHIRResponse:
    return _definition("StructureDefinition", definition_id, request)


@router.get("/CodeSystem/{definition_id}")
async def read_code_system(definition_id: str, request: Request) -> FHIRResponse:
    return _definition("CodeSystem", definition_id, request)
