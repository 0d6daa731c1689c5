// Building the page without innerHTML: every value from the API becomes a text node, so
// nothing a source system holds can ever run as markup or script (and the CSP forbids
// inline script anyway). Shared by every app under /apps/.

/** h("p", {class: "nhsuk-body"}, "text", child, ...) → an element. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** The same for SVG (charts). */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** "9991000003" → "999 100 0003" (the NHS number as people read it). */
export function formatNhs(nhs) {
  const d = String(nhs || "").replace(/\s/g, "");
  return d.length === 10 ? `${d.slice(0, 3)} ${d.slice(3, 6)} ${d.slice(6)}` : d;
}

/** "1936-04-02" → "2-Apr-1936" (the NHS clinical date format); partial dates kept short. */
export function formatDate(value) {
  if (!value) return "";
  const m = /^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?/.exec(String(value));
  if (!m) return String(value);
  const [, y, mo, d] = m;
  if (!mo) return y;
  if (!d) return `${MONTHS[Number(mo) - 1]}-${y}`;
  return `${Number(d)}-${MONTHS[Number(mo) - 1]}-${y}`;
}

/** An instant in the viewer's local time: "2-Apr-2026 14:05". */
export function formatDateTime(value) {
  if (!value) return "";
  const t = new Date(value);
  if (Number.isNaN(t.getTime())) return String(value);
  const pad = (n) => String(n).padStart(2, "0");
  return `${t.getDate()}-${MONTHS[t.getMonth()]}-${t.getFullYear()} ${pad(t.getHours())}:${pad(t.getMinutes())}`;
}

/** Whole years between a birth date and today (or the date of death). */
export function ageInYears(birthDate, until) {
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(String(birthDate || ""));
  if (!m) return null;
  const end = until ? new Date(until) : new Date();
  let years = end.getFullYear() - Number(m[1]);
  const before = end.getMonth() + 1 < Number(m[2]) || (end.getMonth() + 1 === Number(m[2]) && end.getDate() < Number(m[3]));
  if (before) years -= 1;
  return years;
}

export function capitalise(text) {
  const t = String(text || "");
  return t ? t[0].toUpperCase() + t.slice(1) : t;
}

/** "on-hold" → "On hold". */
export function plainCode(code) {
  return capitalise(String(code || "").replace(/[-_]/g, " "));
}
