// Small readers for the FHIR resources the gateway returns (UK Core R4), shared by the apps.

export const NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number";
export const ODS = "https://fhir.nhs.uk/Id/ods-organization-code";

export function resources(bundle, type) {
  return (bundle.entry || []).map((e) => e.resource).filter((r) => r && (!type || r.resourceType === type));
}

export function humanName(patient) {
  const name = (patient.name || []).find((n) => n.use === "official") || (patient.name || [])[0];
  if (!name) return { family: "", given: "", prefix: "", text: "Name not recorded" };
  const family = (name.family || "").toUpperCase();
  const given = (name.given || []).join(" ");
  const prefix = (name.prefix || []).join(" ");
  return { family, given, prefix, text: name.text || [family, given].filter(Boolean).join(", ") };
}

export function nhsNumber(patient) {
  const id = (patient.identifier || []).find((i) => i.system === NHS_NUMBER);
  return id ? id.value : patient.id;
}

export function odsCode(reference) {
  const id = reference && reference.identifier;
  return id && id.system === ODS ? id.value : null;
}

export function refDisplay(reference) {
  if (!reference) return "";
  return reference.display || (reference.identifier && reference.identifier.value) || reference.reference || "";
}

export function codeText(concept) {
  if (!concept) return "";
  if (concept.text) return concept.text;
  const coding = (concept.coding || []).find((c) => c.display) || (concept.coding || [])[0];
  return coding ? coding.display || coding.code : "";
}

/**
 * ODS code → organisation name from every organisation reference in the Bundle, and each
 * source (meta.source) → the name of the organisation its Provenance names.
 */
export function organisations(bundle) {
  const byOds = {};
  const note = (ref) => {
    const ods = odsCode(ref);
    if (ods && ref.display && !byOds[ods]) byOds[ods] = ref.display;
  };
  for (const r of resources(bundle)) {
    // managingOrganization: one Reference on a Patient, a list on a CareTeam
    [r.author, ...(r.generalPractitioner || []), ...[].concat(r.managingOrganization || [])].forEach((x) => x && note(x));
    (r.participant || []).forEach((p) => p.onBehalfOf && note(p.onBehalfOf));
    (r.agent || []).forEach((a) => a.who && note(a.who));
  }
  const bySource = {};
  for (const p of resources(bundle, "Provenance")) {
    const key = String((p.meta || {}).source || "").replace(/^urn:caregateway:source:/, "");
    const who = ((p.agent || [])[0] || {}).who;
    const ods = odsCode(who);
    if (key) bySource[key] = (who && who.display) || (ods && byOds[ods]) || ods || key;
  }
  return { byOds, bySource };
}

export function sourceOf(resource) {
  return String((resource.meta || {}).source || "").replace(/^urn:caregateway:source:/, "");
}
