// Class area over time: an SVG chart of a `/timeseries` answer. One line per foreground class
// (area, left axis), the valid fraction of each date as a grey bar (right axis, 0-100 %), and
// one clickable marker per date.

const SVG = "http://www.w3.org/2000/svg";
const PAD = { left: 46, right: 30, top: 8, bottom: 22 };

function el(name, attrs = {}, text = "") {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text) node.textContent = text;
  return node;
}

/** Time (ms) of a row: its datetime, or the start of its day (group=day rows are `YYYY-MM-DD`). */
export function rowTime(row) {
  const d = row.datetime.length === 10 ? `${row.datetime}T00:00:00Z` : row.datetime;
  return Date.parse(d);
}

/** Area unit for the largest value, so an axis uses one unit. */
export function areaUnit(maxM2) {
  if (maxM2 >= 1e6) return { name: "km²", scale: 1e6 };
  if (maxM2 >= 1e4) return { name: "ha", scale: 1e4 };
  return { name: "m²", scale: 1 };
}

function ticks(max, n = 4) {
  if (!(max > 0)) return [0];
  const raw = max / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [0];
  while (out[out.length - 1] < max * 0.9999) out.push(out.length * step);  // the last tick is >= max
  return out;
}

/**
 * Draw the rows into `svg` (width/height from its box).
 * @param {object[]} rows `/timeseries` rows in date order
 * @param {string[]} palette colour per class
 * @param {Function} onPick called with (row, index) when a date's marker is clicked
 * @param {number|null} selected index of the date shown on the map
 */
export function drawTimeSeries(svg, rows, palette, onPick, selected = null) {
  svg.replaceChildren();
  const width = svg.clientWidth || Number(svg.getAttribute("width")) || 300;
  const height = svg.clientHeight || Number(svg.getAttribute("height")) || 160;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  if (!rows.length) return;
  const classes = [...new Set(rows.flatMap((r) => r.classes.map((c) => c.class)))].filter((c) => c > 0).sort();
  const times = rows.map(rowTime);
  const t0 = Math.min(...times), t1 = Math.max(...times);
  const maxArea = Math.max(0, ...rows.flatMap((r) => r.classes.filter((c) => c.class > 0).map((c) => c.area_m2)));
  const unit = areaUnit(maxArea);
  const yTicks = ticks(maxArea / unit.scale);
  const yMax = yTicks[yTicks.length - 1] || 1;
  const plotW = width - PAD.left - PAD.right, plotH = height - PAD.top - PAD.bottom;
  const x = (t) => PAD.left + (t1 > t0 ? ((t - t0) / (t1 - t0)) * plotW : plotW / 2);
  const y = (m2) => PAD.top + plotH - (m2 / unit.scale / yMax) * plotH;
  const yValid = (f) => PAD.top + plotH - f * plotH;

  // valid fraction: grey bars behind the lines
  const barW = Math.max(3, Math.min(14, plotW / rows.length / 2));
  rows.forEach((r, i) => {
    svg.append(el("rect", {
      class: "valid-bar", "data-index": i, x: x(times[i]) - barW / 2, y: yValid(r.valid_fraction),
      width: barW, height: PAD.top + plotH - yValid(r.valid_fraction), fill: "#c9ced4",
    }, ""));
  });
  // axes
  for (const v of yTicks) {
    const yy = PAD.top + plotH - (v / yMax) * plotH;
    svg.append(el("line", { x1: PAD.left, x2: PAD.left + plotW, y1: yy, y2: yy, stroke: "#e4e7ea" }));
    svg.append(el("text", { x: PAD.left - 4, y: yy + 3, "text-anchor": "end", class: "tick" },
      Number(v.toFixed(3)).toString()));
  }
  svg.append(el("text", { x: 2, y: PAD.top + 8, class: "tick" }, unit.name));
  for (const f of [0, 0.5, 1]) {
    svg.append(el("text", { x: PAD.left + plotW + 3, y: yValid(f) + 3, class: "tick valid" }, `${f * 100}%`));
  }
  const fmt = (t) => new Date(t).toISOString().slice(0, 10);
  svg.append(el("text", { x: PAD.left, y: height - 6, class: "tick" }, fmt(t0)));
  if (t1 > t0) svg.append(el("text", { x: PAD.left + plotW, y: height - 6, "text-anchor": "end", class: "tick" }, fmt(t1)));

  // one line per foreground class, markers clickable
  for (const k of classes) {
    const colour = (palette[k] || "#1f78b4").slice(0, 7);
    const pts = rows.map((r, i) => [x(times[i]), y((r.classes.find((c) => c.class === k) || { area_m2: 0 }).area_m2)]);
    svg.append(el("polyline", {
      points: pts.map((p) => p.join(",")).join(" "), fill: "none", stroke: colour, "stroke-width": 2, class: `line class-${k}`,
    }));
    pts.forEach(([px, py], i) => {
      const marker = el("circle", {
        cx: px, cy: py, r: i === selected ? 6 : 4, fill: i === selected ? "#fff" : colour, stroke: colour,
        "stroke-width": 2, class: "date-marker", "data-index": i, "data-class": k, tabindex: 0,
      });
      const area = (rows[i].classes.find((c) => c.class === k) || { area_m2: 0 }).area_m2;
      marker.append(el("title", {}, `${rows[i].datetime}: class ${k} ${(area / unit.scale).toFixed(3)} ${unit.name}, `
        + `${(100 * rows[i].valid_fraction).toFixed(1)}% valid (${rows[i].items.join(", ")})`));
      marker.addEventListener("click", () => onPick(rows[i], i));
      marker.addEventListener("keydown", (e) => { if (e.key === "Enter") onPick(rows[i], i); });
      svg.append(marker);
    });
  }
}
