// The usage page's history: the current period day by day (`GET /v1/usage/daily`) as an SVG bar
// chart drawn here (no chart library), with the same numbers in a table for screen readers and
// for reading exact values.

import { h } from "./ui.js";

const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text != null) node.textContent = text;
  return node;
}

/** Bars of `key` per day, with a title per bar (the value on hover) and a scale. */
function bars(days, slots, key, fmt, label) {
  const width = 640, height = 140, top = 14, bottom = 18;
  const max = Math.max(0, ...days.map((d) => d[key]));
  const scale = max || 1;
  // One slot per day of the whole period, so a bar keeps its width as the month goes on.
  const step = width / Math.max(slots, days.length, 1);
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": `${label} per day` });
  svg.append(el("text", { x: 0, y: 10 }, `${label}, most in a day: ${fmt(max)}`));
  days.forEach((d, i) => {
    const hgt = ((height - top - bottom) * d[key]) / scale;
    const bar = el("rect", {
      x: (i * step + 1).toFixed(1), y: (height - bottom - hgt).toFixed(1),
      width: Math.max(1, step - 2).toFixed(1), height: hgt.toFixed(1), rx: 1, class: "bar-fg",
    });
    bar.append(el("title", {}, `${d.date}: ${fmt(d[key])}`));
    svg.append(bar);
    if (i === 0 || i === days.length - 1 || (i + 1) % 7 === 0) {
      svg.append(el("text", { x: (i * step).toFixed(1), y: height - 4 }, d.date.slice(5)));
    }
  });
  return svg;
}

/** The history section: two charts and a collapsible table of the days. */
export function dailyUsage(daily) {
  const days = daily.days;
  const slots = Math.round((Date.parse(daily.period_end) - Date.parse(daily.period_start)) / 86400000) || days.length;
  if (!days.length) return h("p", { class: "hint" }, "No days in this period yet.");
  const minutes = (n) => n.toFixed(1);
  const rows = days.map((d) => h("tr", {}, h("td", {}, d.date), h("td", {}, String(d.sessions)), h("td", {}, minutes(d.session_minutes))));
  return h("section", { "aria-label": "This period day by day" },
    h("h2", {}, "This period, day by day"),
    bars(days, slots, "sessions", String, "Sessions started"),
    bars(days, slots, "session_minutes", minutes, "Session minutes"),
    h("details", {}, h("summary", {}, "The numbers"),
      h("div", { class: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {}, h("th", {}, "Day (UTC)"), h("th", {}, "Sessions"), h("th", {}, "Minutes"))),
        h("tbody", {}, rows)))),
    h("p", { class: "hint" }, "Days are UTC. API calls are metered per month, not per day."));
}
