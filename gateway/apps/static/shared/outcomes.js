// What the gateway's OperationOutcomes mean, in plain words (specs/behaviour.md): the
// reason codes of a refusal or a withheld part, a source that did not answer, the
// data-quality warnings of the merge, and the break-glass notice. The apps never show the
// raw codes alone and never hide that an answer is incomplete.

export const REASON_SYSTEM = "urn:caregateway:decision-reason";
export const MERGE_SYSTEM = "urn:caregateway:merge-warning";
const ISSUE_SOURCE = "urn:caregateway:extension:issue-source";

/** Reason codes → what they mean for the person reading the page. */
export const REASONS = {
  "level-demographics-only":
    "your role lets you see this person's details and care team only, not their care plans",
  "label-restricted": "some records are restricted and your role may not see them",
  "source-withheld-by-patient": "the person has asked for one organisation's records not to be shared",
  "recipient-refused-by-patient": "the person has asked for their records not to be shared with your organisation",
  "patient-objected": "the person has objected to their record being shared",
  "no-legitimate-relationship": "your organisation has no care relationship with this person on record",
  "role-not-permitted": "your role may not see this information",
  "purpose-not-permitted": "the reason you gave for looking is not one your role may use",
  "purpose-missing": "no reason for looking was given",
  "scope-insufficient": "this app was not given access to this information",
  "source-unavailable": "a system that holds part of the record did not answer",
};

/** Which refusals emergency access (break-glass) can override (policy default). */
export const BREAK_GLASS_OVERRIDES = new Set(["no-legitimate-relationship", "patient-objected"]);

/** Friendly names of the demo's sources, by their source name in the sources file. */
export const SOURCE_NAMES = {
  socialcare: "Adult social care",
  community: "Community health",
  joint: "Joint care plans",
};

const ELEMENTS = {
  "Patient.birthDate": "date of birth",
  "Patient.name": "name",
  "Patient.gender": "gender",
  "Patient.address": "address",
  "Patient.telecom": "contact details",
  "Patient.deceased": "date of death",
  "Patient.deceasedDateTime": "date of death",
  "Patient.deceasedBoolean": "whether the person has died",
  "Patient.generalPractitioner": "GP practice",
};

export function sourceKey(uri) {
  return String(uri || "").replace(/^urn:caregateway:source:/, "");
}

export function sourceName(key, orgNames = {}) {
  return orgNames[key] || SOURCE_NAMES[key] || key;
}

export function reasonCodes(issue) {
  return ((issue.details || {}).coding || []).filter((c) => c.system === REASON_SYSTEM).map((c) => c.code);
}

export function reasonsInWords(codes) {
  const words = codes.map((c) => REASONS[c] || c.replace(/-/g, " "));
  return words.length ? words.join("; ") : "no reason was given";
}

function joinWords(items) {
  if (items.length <= 1) return items.join("");
  return `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}`;
}

/** The OperationOutcome entries of a Bundle (search.mode = outcome). */
export function bundleOutcomes(bundle) {
  return (bundle.entry || [])
    .filter((e) => e.resource && e.resource.resourceType === "OperationOutcome")
    .flatMap((e) => e.resource.issue || []);
}

/**
 * Sort a Bundle's issues into what a page must say: {withheld: [codes], missing: [source
 * keys], quality: [{code, element, sources}], breakGlass: bool}.
 */
export function classify(bundle) {
  const result = { withheld: [], missing: [], quality: [], breakGlass: false };
  for (const issue of bundleOutcomes(bundle)) {
    if (issue.code === "suppressed") {
      for (const c of reasonCodes(issue)) if (!result.withheld.includes(c)) result.withheld.push(c);
    } else if (issue.code === "incomplete") {
      const text = (issue.details && issue.details.text) || issue.diagnostics || "";
      const m = /Source '([^']+)'/.exec(text);
      result.missing.push(m ? m[1] : "one source");
    } else if (reasonCodes(issue).includes("break-glass")) {
      result.breakGlass = true;
    } else if (issue.code === "informational") {
      const coding = ((issue.details || {}).coding || []).find((c) => c.system === MERGE_SYSTEM);
      const sources = (issue.extension || []).filter((x) => x.url === ISSUE_SOURCE).map((x) => sourceKey(x.valueUri));
      result.quality.push({
        code: coding ? coding.code : "warning",
        element: (issue.expression || [])[0] || null,
        sources,
      });
    }
  }
  return result;
}

export function missingInWords(key, orgNames) {
  return `${sourceName(key, orgNames)} did not answer, so its part of the record is missing; try again in a few minutes.`;
}

/** A data-quality warning as a sentence naming the element and the sources, never values. */
export function qualityInWords(warning, orgNames) {
  const sources = joinWords(warning.sources.map((k) => sourceName(k, orgNames)));
  if (warning.code === "duplicate-person") {
    return `${sources || "A source"} holds more than one record for this person (possible duplicate records). Check you have the right person.`;
  }
  if (warning.code === "demographics-conflict") {
    const element = ELEMENTS[warning.element] || (warning.element || "a detail").replace(/^Patient\./, "");
    return `The ${element} differs between ${sources || "the sources"}. Check it with the person before relying on it.`;
  }
  return `There is a data-quality problem in ${sources || "the record"}${warning.element ? ` (${ELEMENTS[warning.element] || warning.element})` : ""}.`;
}

/** The reason codes of a refusal (403 OperationOutcome). */
export function refusalReasons(outcome) {
  return ((outcome && outcome.issue) || []).flatMap(reasonCodes);
}

export function outcomeText(outcome) {
  const issue = ((outcome && outcome.issue) || [])[0] || {};
  return issue.diagnostics || (issue.details && issue.details.text) || "";
}
