// The patient banner (NHS clinical safety guidance for identifying the patient on screen):
// FAMILY name, Given name (title), date of birth as 2-Apr-1936 with age, gender, NHS number
// as 999 100 0003, GP practice, a deceased notice, and which organisations the information
// on the page came from. Used by the clinician viewer; the person's own view can reuse it.
import { ageInYears, capitalise, formatDate, formatNhs, h } from "./dom.js";
import { humanName, nhsNumber, refDisplay, odsCode } from "./fhir.js";

export function patientBanner(patient, { sources = [] } = {}) {
  const name = humanName(patient);
  const deceased = patient.deceasedDateTime || (patient.deceasedBoolean ? true : null);
  const age = ageInYears(patient.birthDate, typeof deceased === "string" ? deceased : null);
  const gp = (patient.generalPractitioner || [])[0];
  const gpText = gp ? [refDisplay(gp), odsCode(gp) && gp.display ? `(${odsCode(gp)})` : null].filter(Boolean).join(" ") : "Not recorded";
  const item = (label, value, id) =>
    h("div", { class: "app-patient-banner__item" }, h("dt", {}, label), h("dd", { id }, value));
  return h(
    "section",
    { class: "app-patient-banner", "aria-label": "Patient details", id: "patient-banner" },
    h(
      "p",
      { class: "app-patient-banner__name", id: "banner-name" },
      h("span", { class: "app-patient-banner__family" }, name.family),
      name.given ? `, ${name.given}` : "",
      name.prefix ? ` (${name.prefix})` : "",
    ),
    h(
      "dl",
      { class: "app-patient-banner__details" },
      item("Born", patient.birthDate ? `${formatDate(patient.birthDate)}${age !== null ? ` (${age} years)` : ""}` : "Not recorded", "banner-born"),
      item("Gender", capitalise(patient.gender || "not recorded"), "banner-gender"),
      item("NHS number", formatNhs(nhsNumber(patient)), "banner-nhs"),
      item("GP practice", gpText, "banner-gp"),
    ),
    deceased
      ? h(
          "p",
          { class: "app-patient-banner__deceased", id: "banner-deceased" },
          h("strong", {}, "This person has died"),
          typeof deceased === "string" ? ` (${formatDate(deceased)})` : "",
        )
      : null,
    sources.length
      ? h("p", { class: "app-patient-banner__sources", id: "banner-sources" }, `Information from: ${sources.join(", ")}`)
      : null,
  );
}
