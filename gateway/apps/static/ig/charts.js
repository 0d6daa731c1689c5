// Bar charts drawn as SVG in the page from the API's own data (no charting library, no
// CDN). Each chart has a text title and description for screen readers, a legend, and the
// same figures as a table beneath (WCAG 1.1.1: the chart is not the only way to read them).
import { h, s } from "../shared/dom.js";
import * as ui from "../shared/shell.js";

const WIDTH = 720;
const HEIGHT = 260;
const PAD = { top: 16, right: 16, bottom: 48, left: 48 };

/**
 * A stacked bar chart. `categories`: x labels; `series`: [{name, values: [n per category]}].
 */
export function barChart({ id, title, description, categories, series, categoryLabel }) {
  const totals = categories.map((_, i) => series.reduce((sum, ser) => sum + (ser.values[i] || 0), 0));
  const max = Math.max(1, ...totals);
  const step = niceStep(max);
  const top = Math.ceil(max / step) * step;
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const band = plotW / Math.max(1, categories.length);
  const barW = Math.max(4, Math.min(48, band * 0.7));
  const y = (v) => PAD.top + plotH - (v / top) * plotH;

  const svg = s("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-labelledby": `${id}-title ${id}-desc`, focusable: "false" });
  svg.append(s("title", { id: `${id}-title` }, title), s("desc", { id: `${id}-desc` }, description));
  for (let v = 0; v <= top; v += step) {
    svg.append(
      s("line", { class: "app-chart__grid", x1: PAD.left, x2: WIDTH - PAD.right, y1: y(v), y2: y(v) }),
      s("text", { class: "app-chart__label", x: PAD.left - 8, y: y(v) + 5, "text-anchor": "end" }, String(v)),
    );
  }
  svg.append(s("line", { class: "app-chart__axis", x1: PAD.left, x2: WIDTH - PAD.right, y1: y(0), y2: y(0) }));
  const labelEvery = Math.ceil(categories.length / 10);
  categories.forEach((cat, i) => {
    const x = PAD.left + band * i + (band - barW) / 2;
    let base = 0;
    series.forEach((ser, k) => {
      const v = ser.values[i] || 0;
      if (v > 0) {
        svg.append(s("rect", { class: `app-chart__series-${k % 6}`, x, y: y(base + v), width: barW, height: y(base) - y(base + v) }, s("title", {}, `${cat}: ${ser.name} ${v}`)));
      }
      base += v;
    });
    if (i % labelEvery === 0) {
      svg.append(s("text", { class: "app-chart__label", x: x + barW / 2, y: HEIGHT - PAD.bottom + 20, "text-anchor": "middle" }, cat));
    }
  });
  const legend = h(
    "ul",
    { class: "app-chart__legend", "aria-hidden": "true" },
    series.map((ser, k) => h("li", {}, h("span", { class: `app-chart__key app-chart__series-${k % 6}` }), ser.name)),
  );
  const figures = h(
    "details",
    { class: "nhsuk-details" },
    h("summary", { class: "nhsuk-details__summary" }, h("span", { class: "nhsuk-details__summary-text" }, `${title}: the figures`)),
    h(
      "div",
      { class: "nhsuk-details__text" },
      ui.scrollable(`${title}: the figures`, ui.table(null, [categoryLabel, ...series.map((ser) => ser.name), "Total"], categories.map((cat, i) => [cat, ...series.map((ser) => String(ser.values[i] || 0)), String(totals[i])]))),
    ),
  );
  return h("figure", { class: "app-chart", id }, h("figcaption", {}, ui.heading(3, title)), svg, legend, figures);
}

function niceStep(max) {
  const raw = max / 5;
  const mag = 10 ** Math.floor(Math.log10(Math.max(1, raw)));
  const norm = raw / mag;
  return Math.max(1, (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag);
}
