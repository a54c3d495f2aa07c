// Time on a STAC API collection: the class area of the drawn area at every date of the search
// (chart from `/timeseries`, click a date to show it on the map), and the change between two
// dates (`/change/tiles` layer, gained / lost areas of the drawn areas from `/change/areas`).

import { familyPrefix, fetchJSON, queryString } from "./api.js";
import { areaUnit, drawTimeSeries } from "./chart.js";
import { otsuTileLayer } from "./layers.js";

const $ = (id) => document.getElementById(id);
//: Change classes (server contract): 0 background at both dates, 1 at both, 2 gained, 3 lost.
export const CHANGE_CLASSES = [
  { cls: 2, name: "gained", colour: "#2166ac" },
  { cls: 3, name: "lost", colour: "#e6550d" },
  { cls: 1, name: "stable", colour: "#a0aab4" },
];

/** A day (`YYYY-MM-DD`) as a STAC datetime interval covering it (UTC). */
export function dayInterval(day) {
  return `${day}T00:00:00Z/${day}T23:59:59Z`;
}

/** Per-feature properties of a FeatureCollection answer (or the older `features: [result]`). */
function featureResults(body) {
  return (body.features || []).map((f) => (f.type === "Feature" ? f.properties || {} : f));
}

function formatArea(m2, unit) {
  return `${(m2 / unit.scale).toFixed(unit.scale === 1 ? 0 : 3)} ${unit.name}`;
}

/**
 * Wire the "Time" panel section.
 * @param {object} ctx the viewer's pieces: {map, app, maskEntries, update, showError, clearErrors, palette}
 * @returns {{sourceChanged: Function, aoisChanged: Function}} hooks the viewer calls
 */
export function setupTime(ctx) {
  const { map, app } = ctx;
  const time = { range: "", rows: [], selected: null, seriesKey: "", changeLayer: null, generation: 0 };
  app.time = time;  // for the browser test and debugging

  const enabled = () => app.source && app.source.kind === "stacapi";
  /** The request's entries without the search datetime (replaced by the caller's). */
  const baseEntries = () => ctx.maskEntries().filter(([k]) => k !== "datetime");

  function geometries() {
    return app.aois.getLayers().map((l) => l.toGeoJSON().geometry);
  }

  function redraw() {
    drawTimeSeries($("timeseries-chart"), time.rows, ctx.palette(), jumpTo, time.selected);
  }

  // ------------------------------------------------------------ time series
  async function computeSeries() {
    const geoms = geometries();
    const box = $("timeseries-status");
    if (!enabled() || !geoms.length) {
      time.rows = []; time.seriesKey = "";
      $("timeseries-chart").setAttribute("hidden", "");
      box.textContent = enabled() ? "Draw an area on the map for its class areas over time." : "";
      return;
    }
    const entries = [...baseEntries(), ["datetime", time.range]];
    const geometry = geoms[0];
    const key = `${queryString(entries)}|${JSON.stringify(geometry)}`;
    if (key === time.seriesKey) return;  // e.g. a jump to a date: the series does not change
    time.seriesKey = key;
    const gen = ++time.generation;
    ctx.clearErrors("Time series");
    box.textContent = "Computing the time series…";
    try {
      const body = await fetchJSON(`${familyPrefix(app.source)}/timeseries?${queryString(entries)}`, {
        method: "POST", headers: { "Content-Type": "application/geo+json" },
        body: JSON.stringify({ type: "Feature", properties: {}, geometry }),
      });
      if (gen !== time.generation) return;
      time.rows = body.rows;
      time.selected = null;
      $("timeseries-chart").removeAttribute("hidden");
      redraw();
      const many = geoms.length > 1 ? " (first drawn area)" : "";
      box.textContent = `${body.rows.length} dates${many}; grey bars: valid fraction. Click a date to show it.`;
      const days = body.rows.map((r) => r.datetime.slice(0, 10));
      if (days.length && !$("change-before").value) $("change-before").value = days[0];
      if (days.length && !$("change-after").value) $("change-after").value = days[days.length - 1];
      document.body.dataset.timeseriesComputed = String(Date.now());
    } catch (err) {
      if (gen !== time.generation) return;
      time.seriesKey = "";
      box.textContent = "";
      $("timeseries-chart").setAttribute("hidden", "");
      ctx.showError("Time series", err.message);
    }
  }

  /** Show one date of the series on the map (mask, imagery, areas follow the source's datetime). */
  function jumpTo(row, index) {
    time.selected = index;
    app.source.datetime = row.interval;
    $("shown-date").textContent = `Map shows ${row.datetime} (${row.items.join(", ")}).`;
    $("all-dates").hidden = false;
    document.body.dataset.shownDate = row.datetime;
    redraw();
    ctx.update();
  }

  function showAllDates() {
    time.selected = null;
    app.source.datetime = time.range;
    $("shown-date").textContent = "";
    $("all-dates").hidden = true;
    delete document.body.dataset.shownDate;
    redraw();
    ctx.update();
  }

  function useSelected(which) {
    if (time.selected === null) return;
    $(`change-${which}`).value = time.rows[time.selected].datetime.slice(0, 10);
  }

  // ------------------------------------------------------------ change
  function changeEntries() {
    const before = $("change-before").value, after = $("change-after").value;
    if (!before || !after) throw new Error("pick a before and an after date first");
    return [...baseEntries(), ["before", dayInterval(before)], ["after", dayInterval(after)]];
  }

  function removeChangeLayer() {
    if (time.changeLayer) map.removeLayer(time.changeLayer);
    time.changeLayer = null;
    time.changeAreasKey = "";
    $("hide-change").hidden = true;
    $("change-areas").replaceChildren();
  }

  async function showChange() {
    ctx.clearErrors("Change tiles", "Change areas");
    let entries;
    try { entries = changeEntries(); } catch (err) { ctx.showError("Change", err.message); return; }
    ctx.clearErrors("Change");
    removeChangeLayer();
    const layer = otsuTileLayer(`${familyPrefix(app.source)}/change`, queryString(entries), {
      name: "Change tiles", zIndex: 30, opacity: 0.9, bounds: app.source.bounds, maxzoom: app.source.maxzoom,
      onError: (name, message) => ctx.showError(name, message),
    });
    layer.on("load", () => { document.body.dataset.changeLoaded = String(Date.now()); });
    layer.addTo(map);
    time.changeLayer = layer;
    time.changeQuery = queryString(entries);
    $("hide-change").hidden = false;
    await changeAreas();
  }

  async function changeAreas() {
    const box = $("change-areas");
    const geoms = geometries();
    if (!time.changeLayer || !geoms.length) { box.replaceChildren(); time.changeAreasKey = ""; return; }
    const key = `${time.changeQuery}|${JSON.stringify(geoms)}`;
    if (key === time.changeAreasKey) return;
    time.changeAreasKey = key;
    box.textContent = "Computing gained and lost areas…";
    const fc = { type: "FeatureCollection",
      features: geoms.map((g, i) => ({ type: "Feature", properties: { id: i + 1 }, geometry: g })) };
    try {
      const body = await fetchJSON(`${familyPrefix(app.source)}/change/areas?${time.changeQuery}`, {
        method: "POST", headers: { "Content-Type": "application/geo+json" }, body: JSON.stringify(fc),
      });
      box.replaceChildren(...featureResults(body).map((r, i) => changeTable(r, i + 1)));
      box.dataset.computed = String(Date.now());
    } catch (err) {
      box.replaceChildren();
      time.changeAreasKey = "";
      ctx.showError("Change areas", err.message);
    }
  }

  /** Multi-class algorithms answer a transition matrix: one row per (before, after) class pair that occurs. */
  function transitionTable(result, n) {
    const wrap = document.createElement("div");
    const title = document.createElement("div");
    title.textContent = `AOI ${n}: ${$("change-before").value} → ${$("change-after").value} (class transitions)`;
    const rows = (result.transitions || []).filter((t) => t.pixels > 0);
    const unit = areaUnit(Math.max(0, ...rows.map((t) => t.area_m2)));
    const table = document.createElement("table");
    table.className = "areas transitions";
    table.innerHTML = "<thead><tr><th>before → after</th><th>area</th><th>pixels</th></tr></thead>";
    const tbody = document.createElement("tbody");
    for (const t of rows) {
      const tr = document.createElement("tr");
      tr.dataset.before = t.before;
      tr.dataset.after = t.after;
      tr.dataset.areaM2 = t.area_m2;
      for (const text of [`${t.before} → ${t.after}`, formatArea(t.area_m2, unit), t.pixels.toLocaleString()]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      tbody.append(tr);
    }
    table.append(tbody);
    wrap.append(title, table);
    return wrap;
  }

  function changeTable(result, n) {
    const wrap = document.createElement("div");
    const title = document.createElement("div");
    title.textContent = `AOI ${n}: ${$("change-before").value} → ${$("change-after").value}`;
    if (!(result.classes && result.classes.length)) return transitionTable(result, n);
    const classes = result.classes;
    const unit = areaUnit(Math.max(0, ...classes.map((c) => c.area_m2)));
    const table = document.createElement("table");
    table.className = "areas change";
    table.innerHTML = "<thead><tr><th>change</th><th>area</th><th>pixels</th></tr></thead>";
    const tbody = document.createElement("tbody");
    for (const { cls, name, colour } of CHANGE_CLASSES) {
      const c = classes.find((k) => k.class === cls);
      if (!c) continue;
      const tr = document.createElement("tr");
      tr.dataset.class = cls;
      tr.dataset.areaM2 = c.area_m2;
      const label = document.createElement("td");
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = colour;
      label.append(sw, ` ${name}`);
      const area = document.createElement("td");
      area.textContent = formatArea(c.area_m2, unit);
      const px = document.createElement("td");
      px.textContent = c.pixels.toLocaleString();
      tr.append(label, area, px);
      tbody.append(tr);
    }
    table.append(tbody);
    wrap.append(title, table);
    return wrap;
  }

  // ------------------------------------------------------------ wiring
  $("show-change").addEventListener("click", () => showChange());
  $("hide-change").addEventListener("click", () => removeChangeLayer());
  $("all-dates").addEventListener("click", () => showAllDates());
  $("use-before").addEventListener("click", () => useSelected("before"));
  $("use-after").addEventListener("click", () => useSelected("after"));

  return {
    /** A source was opened: reset the series to its search interval. */
    sourceChanged() {
      $("time-section").hidden = !enabled();
      removeChangeLayer();
      time.range = enabled() ? app.source.datetime || "" : "";
      time.rows = []; time.selected = null; time.seriesKey = "";
      $("shown-date").textContent = "";
      $("all-dates").hidden = true;
    },
    /** Areas were drawn, edited or removed, or the segmentation changed: recompute what depends on them. */
    aoisChanged() {
      if (!enabled()) return;
      computeSeries();
      if (time.changeLayer) {
        const entries = (() => { try { return queryString(changeEntries()); } catch { return null; } })();
        if (entries && entries !== time.changeQuery) showChange(); else changeAreas();
      }
    },
  };
}
