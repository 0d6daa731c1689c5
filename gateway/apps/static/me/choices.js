// "Your sharing choices": the person's own consent directives (specs/consent-directives.md),
// what each one does and does not do, and forms to make, and withdraw, each kind:
//   objection         OPTOUT, deny                     "do not share my record"
//   withhold source   OPTIN, nested deny actor CST     "do not share what X holds about me"
//   refuse recipient  OPTIN, nested deny actor IRCP    "do not let Y see my record"
// The gateway records the person as the performer; a choice applies to the next request.
import { formatDateTime, h } from "../shared/dom.js";
import { ODS, odsCode, resources } from "../shared/fhir.js";
import * as ui from "../shared/shell.js";

const ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
const NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number";

const DOES_NOT = [
  "It does not stop emergency access: in an emergency, a doctor, nurse or social worker can still open your record. Every time they do, it is recorded and checked.",
  "It does not change what each organisation keeps in its own records about you: it only stops them sharing through the shared care record.",
];

/** What a stored Consent is: {kind, ods} (kind objection, withhold, refuse; ods for the last two). */
function kindOf(consent) {
  const rule = ((consent.policyRule || {}).coding || []).map((c) => c.code);
  if (rule.includes("OPTOUT")) return { kind: "objection", ods: null };
  for (const nested of (consent.provision || {}).provision || []) {
    for (const actor of nested.actor || []) {
      const role = ((actor.role || {}).coding || []).map((c) => c.code);
      const ods = odsCode(actor.reference);
      if (role.includes("CST")) return { kind: "withhold", ods };
      if (role.includes("IRCP")) return { kind: "refuse", ods };
    }
  }
  return { kind: "other", ods: null };
}

function describe(consent, names) {
  const { kind, ods } = kindOf(consent);
  const org = names[ods] ? `${names[ods]} (${ods})` : ods;
  return {
    objection: "Do not share my record with any organisation",
    withhold: `Do not share what ${org} holds about me`,
    refuse: `Do not let ${org} see my record`,
  }[kind] || "Another choice about sharing your record";
}

function body(nhs, rule, provision) {
  return {
    resourceType: "Consent",
    status: "active",
    scope: { coding: [{ system: "http://terminology.hl7.org/CodeSystem/consentscope", code: "patient-privacy" }] },
    category: [{ coding: [{ system: "http://loinc.org", code: "59284-0" }] }],
    patient: { identifier: { system: NHS_NUMBER, value: nhs } },
    policyRule: { coding: [{ system: ACT, code: rule }] },
    provision,
  };
}

function naming(nhs, role, ods) {
  const actor = { role: { coding: [{ system: PARTICIPATION, code: role }] }, reference: { identifier: { system: ODS, value: ods } } };
  return body(nhs, "OPTIN", { type: "permit", provision: [{ type: "deny", actor: [actor] }] });
}

/** Organisations the person's record and access log name: ODS → name; and which hold a record. */
function knownOrganisations(bundle, log) {
  const names = {};
  const holders = new Set();
  const note = (ref) => {
    const ods = odsCode(ref);
    if (ods && !names[ods]) names[ods] = ref.display || ods;
  };
  for (const r of bundle ? resources(bundle) : []) {
    // managingOrganization: one Reference on a Patient, a list on a CareTeam
    [r.author, ...(r.generalPractitioner || []), ...[].concat(r.managingOrganization || [])].forEach((x) => x && note(x));
    (r.participant || []).forEach((p) => p.onBehalfOf && note(p.onBehalfOf));
    if (r.resourceType === "Provenance") {
      for (const a of r.agent || []) {
        if (a.who && odsCode(a.who)) {
          note(a.who);
          holders.add(odsCode(a.who));
        }
      }
    }
  }
  for (const e of log && log.status === 200 ? resources(log.body, "AuditEvent") : []) {
    for (const a of e.agent || []) if (!a.requestor && a.who) note(a.who);
  }
  return { names, holders: [...holders] };
}

/** ", recorded for you by {organisation}" when someone else wrote the choice down. */
function recordedBy(consent, nhs, names) {
  const performer = (consent.performer || [])[0];
  const byPerson = performer && (String(performer.reference || "").endsWith(`Patient/${nhs}`) || (performer.identifier || {}).value === nhs);
  if (!performer || byPerson) return "";
  const ods = odsCode((consent.organization || [])[0]);
  return ods ? `, recorded for you by ${names[ods] || ods}` : ", recorded for you by someone caring for you";
}

export function choicesSection({ session, nhs, answer, bundle, log, canChange, reload }) {
  const section = h("section", { id: "choices", "aria-labelledby": "choices-heading" }, ui.heading(2, "Your sharing choices", { id: "choices-heading" }));
  if (answer.status !== 200) {
    section.append(ui.para("Your choices cannot be shown right now. Try again in a few minutes."));
    return section;
  }
  const { names, holders } = knownOrganisations(bundle, log);
  const consents = resources(answer.body, "Consent");
  const active = consents.filter((c) => c.status === "active");
  const past = consents.filter((c) => c.status !== "active");
  section.append(
    ui.para("Your shared care record lets the organisations caring for you see the same information. You can choose to limit this. Whatever you choose:"),
    h("ul", { class: "nhsuk-list nhsuk-list--bullet", id: "choices-does-not" }, DOES_NOT.map((t) => h("li", {}, t))),
  );
  const status = h("div", { id: "choice-status", role: "status" });
  section.append(status);

  section.append(ui.heading(3, "Choices you have made", { id: "current-heading" }));
  if (!active.length) {
    section.append(h("p", { class: "nhsuk-body", id: "no-choices" }, "You have not made any choices. Your record is shared with the organisations caring for you."));
  } else {
    section.append(
      h(
        "ul",
        { class: "nhsuk-list", id: "current-choices" },
        active.map((c) =>
          h(
            "li",
            { class: "nhsuk-card app-choice", "data-consent": c.id },
            h(
              "div",
              { class: "nhsuk-card__content" },
              h("p", { class: "nhsuk-card__heading nhsuk-heading-s" }, describe(c, names)),
              h("p", { class: "nhsuk-card__description" }, `Made ${formatDateTime(c.dateTime)}${recordedBy(c, nhs, names)}.`),
              canChange ? ui.button("Withdraw this choice", { type: "button", variant: "secondary", "data-withdraw": c.id, onclick: () => withdraw(session, c, status, reload) }) : null,
            ),
          ),
        ),
      ),
    );
  }
  if (!canChange) {
    section.append(ui.insetText("To make or change a choice, NHS login needs to check who you are fully first."));
    return section;
  }
  const has = (kind, ods) => active.some((c) => kindOf(c).kind === kind && (!ods || kindOf(c).ods === ods));
  if (!has("objection")) {
    section.append(
      choiceForm({
        id: "objection",
        title: "Do not share my record with any organisation",
        does: "Organisations will not be able to see your shared care record, not even your GP surgery, except in an emergency.",
        submit: "Stop sharing my record",
        onsubmit: () => create(session, body(nhs, "OPTOUT", { type: "deny" }), status, reload),
      }),
    );
  }
  // A choice about one organisation: offered for those it is not already made about.
  const organisationChoice = (form, organisations, code) => {
    const options = organisations.filter((o) => !has(form.id, o));
    if (!options.length) return;
    const select = options.map((o) => [o, names[o] || o]);
    const onsubmit = (ods) => create(session, naming(nhs, code, ods), status, reload);
    section.append(choiceForm({ ...form, select, onsubmit }));
  };
  organisationChoice(
    {
      id: "withhold",
      title: "Do not share what one organisation holds about me",
      does: "Other organisations will not see anything the organisation you choose holds about you, including your details as it records them. That organisation still sees its own records.",
      submit: "Stop sharing this organisation's records",
    },
    holders,
    "CST",
  );
  organisationChoice(
    {
      id: "refuse",
      title: "Do not let one organisation see my record",
      does: "The organisation you choose will not be able to see your shared care record. It can still see what it holds itself.",
      submit: "Stop this organisation seeing my record",
    },
    Object.keys(names),
    "IRCP",
  );
  if (past.length) {
    section.append(
      ui.heading(3, "Choices you have withdrawn"),
      h("ul", { class: "nhsuk-list nhsuk-list--bullet", id: "past-choices" }, past.map((c) => h("li", {}, describe(c, names), ` (withdrawn ${formatDateTime((c.meta || {}).lastUpdated)})`))),
    );
  }
  return section;
}

function choiceForm({ id, title, does, submit, select = null, onsubmit }) {
  const control = select
    ? h("select", { class: "nhsuk-select", id: `${id}-org`, name: "org" }, select.map(([value, label]) => h("option", { value }, label === value ? value : `${label} (${value})`)))
    : null;
  const form = h(
    "form",
    {
      class: "nhsuk-card app-choice-form",
      id: `form-${id}`,
      novalidate: true,
      onsubmit: (event) => {
        event.preventDefault();
        onsubmit(control ? control.value : null);
      },
    },
    h(
      "div",
      { class: "nhsuk-card__content" },
      ui.heading(3, title, { id: `${id}-heading` }),
      h("p", { class: "nhsuk-body" }, h("strong", {}, "What this does: "), does),
      control ? ui.field({ id: `${id}-org`, label: "Organisation", control }) : null,
      ui.button(submit, { id: `${id}-submit`, variant: "warning" }),
    ),
  );
  return form;
}

async function create(session, resource, status, reload) {
  const answer = await session.post("Consent", resource);
  return done(answer, 201, status, reload);
}

async function withdraw(session, consent, status, reload) {
  const changed = { ...consent, status: "inactive" };
  for (const key of ["meta", "dateTime", "performer", "organization"]) delete changed[key];
  const answer = await session.request("PUT", `Consent/${encodeURIComponent(consent.id)}`, {
    headers: { "Content-Type": "application/fhir+json", "If-Match": `W/"${(consent.meta || {}).versionId}"` },
    body: JSON.stringify(changed),
  });
  return done(answer, 200, status, reload);
}

async function done(answer, expected, status, reload) {
  if (answer.status === expected) {
    await reload();
    const target = document.getElementById("choice-status");
    if (target) {
      target.replaceChildren(ui.notification("Your choice has been saved", "It applies from now on, every time anyone asks to see your record.", { success: true }));
      target.scrollIntoView();
    }
    return;
  }
  status.replaceChildren(ui.errorSummary([{ href: "#choices-heading", text: "Your choice could not be saved. Try again, or ask your GP surgery to record it for you." }]));
  status.firstChild.focus();
}
