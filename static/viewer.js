// titiler-otsu web viewer: pick a source, segment it with Otsu, look at the mask over the
// imagery, the histogram with its cut(s), areas of drawn polygons, and copy URLs for QGIS.

import { ApiError, familyPrefix, fetchJSON, queryString, sourceEntries } from "./api.js";
import { bandOptions, cogBands, customEntries, stacBands } from "./bands.js";
import { classOf, drawHistogram, formatValue, histogramQuantile } from "./histogram.js";
import { otsuTileLayer, vectorLayer } from "./layers.js";
import { ParamsForm } from "./params.js";
import { readState, writeState } from "./state.js";
import { setupTime } from "./time.js";

const CONFIG = window.OTSU_CONFIG || { families: ["cog"], palettes: {} };
const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- errors and status
const errors = new Map();

function renderErrors() {
  const box = $("errors");
  box.replaceChildren(...[...errors].map(([where, message]) => {
    const p = document.createElement("p");
    p.textContent = `${where}: ${message}`;
    return p;
  }));
  box.hidden = errors.size === 0;
}

function showError(where, message) {
  errors.set(where, message);
  renderErrors();
}

function clearErrors(...keys) {
  for (const k of keys) errors.delete(k);
  renderErrors();
}

function setStatus(text) { $("status").textContent = text; }

// A bug in this page is reported like a server error, never swallowed.
window.addEventListener("error", (e) => showError("Viewer", e.message));
window.addEventListener("unhandledrejection", (e) => showError("Viewer", String(e.reason && e.reason.message || e.reason)));

if (!window.L) {
  showError("Map library", "Leaflet could not be loaded (no internet access?). An administrator can serve it "
    + "locally with the setting TITILER_OTSU_VIEWER_VENDOR_DIR (see README).");
  throw new Error("Leaflet missing");
}

// ---------------------------------------------------------------- map
const map = L.map("map", { zoomControl: true, worldCopyJump: true }).setView([20, 0], 2);
const basemap = L.tileLayer("https://tile.openstreetmap.org/{z}/{x}/{y}.png", {
  attribution: "&copy; OpenStreetMap contributors", maxZoom: 19, zIndex: 0,
});
basemap.addTo(map);
const overlays = {};
const layerControl = L.control.layers({ OpenStreetMap: basemap }, overlays, { collapsed: true, autoZIndex: false }).addTo(map);
L.control.scale({ imperial: false }).addTo(map);

const app = {
  sources: [],
  algorithms: {},
  source: null,      // {kind, url | collection+datetime+api, title, bounds, maxzoom}
  bands: null,       // {options, rgb}
  threshold: null,   // last /threshold answer
  layers: { imagery: null, mask: null, vectors: null },
  aois: L.featureGroup().addTo(map),
  generation: 0,
  statsCache: new Map(),
  restoring: true,
};
window.otsuViewer = { map, app };  // for debugging and the browser test

const params = new ParamsForm($("params"), () => update());
let time = { sourceChanged() {}, aoisChanged() {} };  // the Time section (STAC API sources), set up in init()

// ---------------------------------------------------------------- current choices
function currentBand() {
  const key = $("band-select").value;
  const option = app.bands && app.bands.options.find((o) => o.key === key);
  if (!option) return { key, entries: [] };
  if (option.key === "custom") return { key, entries: customEntries(app.source.kind, $("expression").value) };
  return option;
}

function algorithmId() { return $("algorithm-select").value; }

function maskEntries(paramsOverride) {
  const p = paramsOverride || params.values();
  const entries = [...sourceEntries(app.source), ...currentBand().entries, ["algorithm", algorithmId()]];
  if (Object.keys(p).length) entries.push(["algorithm_params", JSON.stringify(p)]);
  return [...entries, ...qualityMaskEntries()];
}

/** `mask_asset` + `mask_values` / `mask_bits` (STAC sources): those pixels become nodata. */
function qualityMaskEntries() {
  if (!app.source || app.source.kind === "cog") return [];
  const asset = $("mask-asset").value.trim();
  if (!asset) return [];
  return [["mask_asset", asset], ["mask_values", $("mask-values").value.trim()], ["mask_bits", $("mask-bits").value.trim()]]
    .filter(([, v]) => v);
}

function nClasses() {
  const p = params.values();
  const schema = app.algorithms[algorithmId()]?.parameters || {};
  if (schema.classes) return p.classes ?? schema.classes.default ?? 3;
  return 2;
}

function palette() { return CONFIG.palettes[String(nClasses())] || ["#00000000", "#1f78b4"]; }

function saveState() {
  const c = map.getCenter();
  const src = app.source || {};
  writeState({
    kind: src.kind, url: src.url, collection: src.collection, datetime: src.datetime, api: src.api,
    band: $("band-select").value,
    expression: $("band-select").value === "custom" ? $("expression").value : "",
    algorithm: algorithmId(),
    params: Object.keys(params.values()).length ? params.values() : null,
    imagery: $("imagery-select").value,
    opacity: $("mask-opacity").value,
    outlines: $("outlines").checked ? "1" : "",
    mask_asset: $("mask-asset").value.trim(), mask_values: $("mask-values").value.trim(),
    mask_bits: $("mask-bits").value.trim(),
    map: `${map.getZoom()}/${c.lat.toFixed(5)}/${c.lng.toFixed(5)}`,
    aoi: app.aois.getLayers().length
      ? app.aois.getLayers().map((l) => roundCoords(l.toGeoJSON().geometry)) : null,
  });
  $("share-url").value = location.href;
}

function roundCoords(geometry) {
  const r = (c) => (Array.isArray(c[0]) ? c.map(r) : c.map((v) => Math.round(v * 1e6) / 1e6));
  return { type: geometry.type, coordinates: r(geometry.coordinates) };
}

// ---------------------------------------------------------------- sources
function sourceFormKind() {
  const v = $("source-select").value;
  return v.startsWith("src:") ? null : v;
}

function showSourceForm() {
  const kind = sourceFormKind();
  for (const k of ["cog", "stac", "stacapi"]) $(`source-${k}`).hidden = kind !== k;
  $("open-source").hidden = !kind;
}

function sourceFromForm() {
  const kind = sourceFormKind();
  if (kind === null) {
    const s = app.sources[Number($("source-select").value.slice(4))];
    return { kind: s.kind || "cog", url: s.url, title: s.title, bounds: s.bounds, maxzoom: s.maxzoom };
  }
  if (kind === "stacapi") {
    const start = $("stacapi-start").value, end = $("stacapi-end").value;
    return {
      kind, collection: $("stacapi-collection").value.trim(),
      datetime: start || end ? `${start || ".."}/${end || ".."}` : "",
      api: $("stacapi-api").value.trim(), title: $("stacapi-collection").value.trim(),
    };
  }
  const url = $(`${kind}-url`).value.trim();
  return { kind, url, title: url.split("/").pop() };
}

/** Band/asset names of a source (from the server's info endpoints). */
async function loadBands(source) {
  const q = queryString(sourceEntries(source));
  if (source.kind === "cog") return bandOptions("cog", cogBands(await fetchJSON(`/cog/info?${q}`)));
  if (source.kind === "stac") {
    let names = [];
    try {
      names = await fetchJSON(`/stac/assets?${q}`);
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 404) throw err;
      names = Object.keys(await fetchJSON(`/stac/info?${q}`));
    }
    return bandOptions("stac", stacBands(names));
  }
  return bandOptions("stacapi", []);
}

async function openSource(source, { fit }) {
  clearErrors("Source", "Mask tiles", "Imagery tiles", "Threshold", "Areas", "Class outlines");
  if (source.kind !== "stacapi" && !source.url) { showError("Source", "enter a path or URL first"); return; }
  if (source.kind === "stacapi" && !source.collection) { showError("Source", "enter a collection id first"); return; }
  setStatus(`Opening ${source.title || source.url}…`);
  let bands;
  try {
    bands = await loadBands(source);
  } catch (err) {
    showError("Source", `${source.title || source.url} cannot be opened. ${err.message}`);
    setStatus("");
    return;
  }
  app.source = source;
  app.bands = bands;
  if (fillBandSelect(bands) && !app.keepParams) applyBandHint();
  app.keepParams = false;
  try {
    const tj = await fetchJSON(`${familyPrefix(source)}/WebMercatorQuad/tilejson.json?${queryString([
      ...sourceEntries(source), ...currentBand().entries])}`);
    source.bounds = tj.bounds || source.bounds;
    source.maxzoom = tj.maxzoom ?? source.maxzoom;
  } catch (err) {
    if (!source.bounds) showError("Source", `no TileJSON for this source: ${err.message}`);
  }
  time.sourceChanged();
  $("quality-mask").hidden = source.kind === "cog";
  $("source-info").textContent = source.bounds
    ? `${source.title || ""} · bounds ${source.bounds.map((v) => v.toFixed(3)).join(", ")}` : (source.title || "");
  if (fit && source.bounds) {
    const b = source.bounds;
    map.fitBounds([[b[1], b[0]], [b[3], b[2]]]);
  }
  await update();
}

function fillBandSelect(bands, wanted) {
  const select = $("band-select");
  const previous = wanted || select.dataset.wanted || select.value;
  select.replaceChildren(...bands.options.map((o) => new Option(o.label, o.key)));
  const keys = bands.options.map((o) => o.key);
  const kept = previous && keys.includes(previous);
  select.value = kept ? previous : ["nir", "ndwi"].find((k) => keys.includes(k)) || keys[0];
  delete select.dataset.wanted;
  $("expression").hidden = select.value !== "custom";
  const imagery = $("imagery-select");
  imagery.querySelector('option[value="rgb"]').disabled = !bands.rgb;
  if (!bands.rgb && imagery.value === "rgb") imagery.value = "band";
  return !kept;
}

/** Set the parameters that suit the selected band (e.g. invert for NIR, where water is dark). */
function applyBandHint() {
  const option = app.bands.options.find((o) => o.key === $("band-select").value);
  if (option && option.hint && Object.keys(option.hint).length) params.set({ ...params.values(), ...option.hint });
}

// ---------------------------------------------------------------- layers
function replaceLayer(slot, layer, label) {
  const old = app.layers[slot];
  if (old) { map.removeLayer(old); layerControl.removeLayer(old); }
  app.layers[slot] = layer;
  if (layer) { layer.addTo(map); layerControl.addOverlay(layer, label); }
}

async function imageryEntries(threshold) {
  const mode = $("imagery-select").value;
  if (mode === "none") return null;
  const base = sourceEntries(app.source);
  const bandEntries = mode === "rgb" && app.bands.rgb ? app.bands.rgb : currentBand().entries;
  const key = queryString([...base, ...bandEntries]);
  let stretch = app.statsCache.get(key);
  if (stretch === undefined) {
    try {
      const stats = await fetchJSON(`${familyPrefix(app.source)}/statistics?${key}`);
      stretch = Object.values(stats).map((s) => `${s.percentile_2},${s.percentile_98}`);
    } catch {
      stretch = null;  // e.g. a STAC API mosaic has no statistics: fall back on the histogram
    }
    app.statsCache.set(key, stretch);
  }
  if (!stretch && threshold && mode === "band") {
    stretch = [`${histogramQuantile(threshold.histogram, 0.02)},${histogramQuantile(threshold.histogram, 0.98)}`];
  }
  return [...base, ...bandEntries, ...(stretch || []).map((s) => ["rescale", s])];
}

function layerOptions(name, zIndex, opacity) {
  return {
    name, zIndex, opacity, bounds: app.source.bounds, maxzoom: app.source.maxzoom,
    onError: (layerName, message) => showError(layerName, message),
  };
}

function trackLoading(layer, label) {
  layer.on("loading", () => setStatus(`Loading ${label} tiles…`));
  layer.on("load", () => {
    setStatus(`${label} tiles loaded`);
    document.body.dataset[`${label}Loaded`] = String(Date.now());
  });
}

// ---------------------------------------------------------------- threshold, legend
function legendEntries(thresholds) {
  const n = nClasses();
  const pal = palette();
  const invert = Boolean(params.values().invert);
  const cuts = (thresholds || []).filter((t) => t !== null);
  return Array.from({ length: n }, (_, c) => {
    let range = "";
    if (cuts.length === n - 1) {
      const k = invert ? cuts.length - c : c;
      const lo = k > 0 ? formatValue(cuts[k - 1]) : null, hi = k < cuts.length ? formatValue(cuts[k]) : null;
      range = lo && hi ? `${lo} < v ≤ ${hi}` : lo ? `v > ${lo}` : `v ≤ ${hi}`;
    }
    const name = c === 0 ? "background (transparent)" : n === 2 ? "foreground" : `class ${c}`;
    return { cls: c, colour: pal[c], name, range };
  });
}

function swatch(colour) {
  const s = document.createElement("span");
  s.className = "swatch";
  if (!colour || colour.length === 9 && colour.endsWith("00")) s.classList.add("transparent");
  else s.style.background = colour.slice(0, 7);
  return s;
}

function renderLegend(thresholds) {
  $("legend").replaceChildren(...legendEntries(thresholds).map((e) => {
    const li = document.createElement("li");
    li.dataset.class = e.cls;
    li.append(swatch(e.colour), `${e.cls}: ${e.name}${e.range ? ` (${e.range})` : ""}`);
    return li;
  }));
}

function renderThreshold(thr) {
  const info = $("threshold-info");
  const canvas = $("histogram");
  if (!thr) {
    canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
    return;
  }
  drawHistogram(canvas, thr.histogram, thr.thresholds, palette(), Boolean(params.values().invert));
  const cuts = thr.thresholds.map((t) => (t === null ? "none (no valid pixel)" : formatValue(t))).join(", ");
  const where = thr.bbox ? "of the locked view" : thr.scope === "fixed" ? "fixed" : "of the whole dataset";
  info.textContent = `threshold${thr.thresholds.length > 1 ? "s" : ""}: ${cuts} (${where}; `
    + `${thr.pixels.toLocaleString()} px in the histogram)`;
  canvas.dataset.drawn = "1";
}

// ---------------------------------------------------------------- main update
async function update() {
  if (!app.source || app.restoring) return;
  const gen = ++app.generation;
  clearErrors("Mask tiles", "Imagery tiles", "Threshold", "Class outlines");
  $("expression").hidden = $("band-select").value !== "custom";
  const mq = queryString(maskEntries());
  const prefix = familyPrefix(app.source);

  const mask = otsuTileLayer(prefix, mq, layerOptions("Mask tiles", 20, Number($("mask-opacity").value)));
  trackLoading(mask, "mask");
  replaceLayer("mask", mask, "Otsu mask");
  replaceLayer("vectors", $("outlines").checked
    ? vectorLayer(prefix, mq, { palette: palette(), bounds: app.source.bounds, maxzoom: app.source.maxzoom,
      onError: (n, m) => showError(n, m) })
    : null, "Class outlines");

  const origin = location.origin;
  $("xyz-url").value = `${origin}${prefix}/tiles/WebMercatorQuad/{z}/{x}/{y}.png?${mq}`;
  $("xyz-tif-url").value = `${origin}${prefix}/tiles/WebMercatorQuad/{z}/{x}/{y}.tif?${mq}`;
  $("wmts-url").value = `${origin}${prefix}/WebMercatorQuad/WMTSCapabilities.xml?${mq}`;
  saveState();

  let thr = null;
  try {
    thr = await fetchJSON(`${prefix}/threshold?${mq}`);
  } catch (err) {
    $("threshold-info").textContent = `No histogram: ${err.detail || err.message}`;
    if (!(err instanceof ApiError) || err.status >= 500 || err.status === 0) showError("Threshold", err.message);
  }
  if (gen !== app.generation) return;
  app.threshold = thr;
  renderThreshold(thr);
  renderLegend(thr ? thr.thresholds : null);

  const entries = await imageryEntries(thr);
  if (gen !== app.generation) return;
  let imagery = null;
  if (entries) {
    imagery = otsuTileLayer(prefix, queryString(entries), layerOptions("Imagery tiles", 10, 1));
    trackLoading(imagery, "imagery");
  }
  replaceLayer("imagery", imagery, "Imagery");
  computeAreas();
  document.body.dataset.ready = String(gen);
}

// ---------------------------------------------------------------- lock threshold
async function lockThreshold() {
  if (!app.source) return;
  const algo = algorithmId();
  const schema = app.algorithms[algo]?.parameters || {};
  if (!schema.threshold && !schema.thresholds) {
    showError("Threshold", `'${algo}' has no single threshold to lock; use otsu or multiotsu.`);
    return;
  }
  const v = map.getBounds();
  const b = app.source.bounds || [-180, -90, 180, 90];
  const bbox = [Math.max(v.getWest(), b[0]), Math.max(v.getSouth(), b[1]),
    Math.min(v.getEast(), b[2]), Math.min(v.getNorth(), b[3])];
  if (!(bbox[0] < bbox[2] && bbox[1] < bbox[3])) {
    showError("Threshold", "the map view does not overlap the source: pan to the data first.");
    return;
  }
  const p = params.values();
  delete p.threshold; delete p.thresholds;
  p.scope = "dataset";
  try {
    const thr = await fetchJSON(`${familyPrefix(app.source)}/threshold?${queryString(
      [...maskEntries(p), ["bbox", bbox.map((x) => x.toFixed(6)).join(",")]])}`);
    if (thr.thresholds.some((t) => t === null)) throw new ApiError(0, "no valid pixel in this view");
    const fixed = { ...params.values(), scope: "fixed" };
    if (schema.thresholds) fixed.thresholds = thr.thresholds; else fixed.threshold = thr.thresholds[0];
    params.set(fixed);
    clearErrors("Threshold");
    await update();
    $("threshold-info").textContent += " — locked to the view";
  } catch (err) {
    showError("Threshold", err.message);
  }
}

// ---------------------------------------------------------------- areas
/** Area in the unit that suits `scale` (the polygon's total), so a table uses one unit. */
function formatArea(m2, scale) {
  if (scale >= 1e6) return `${(m2 / 1e6).toFixed(3)} km²`;
  if (scale >= 1e4) return `${(m2 / 1e4).toFixed(2)} ha`;
  return `${m2.toFixed(0)} m²`;
}

/** Per-feature results from an `/areas` answer (a FeatureCollection or one result). */
export function parseAreas(body) {
  if (Array.isArray(body)) return body;
  if (body && Array.isArray(body.features)) return body.features.map((f) => f.properties || f);
  if (body && Array.isArray(body.results)) return body.results;
  return [body];
}

async function computeAreas() {
  time.aoisChanged();
  const layers = app.aois.getLayers();
  const box = $("areas");
  clearErrors("Areas");
  if (!layers.length || !app.source) { box.replaceChildren(); saveState(); return; }
  saveState();
  const fc = { type: "FeatureCollection",
    features: layers.map((l, i) => ({ type: "Feature", properties: { id: i + 1 }, geometry: l.toGeoJSON().geometry })) };
  box.textContent = "Computing areas…";
  try {
    const body = await fetchJSON(`${familyPrefix(app.source)}/areas?${queryString(maskEntries())}`, {
      method: "POST", headers: { "Content-Type": "application/geo+json" }, body: JSON.stringify(fc),
    });
    const results = parseAreas(body);
    const legend = legendEntries(results[0]?.thresholds);
    box.replaceChildren(...results.map((r, i) => areaTable(r, i + 1, legend)));
    box.dataset.computed = String(Date.now());
  } catch (err) {
    box.replaceChildren();
    showError("Areas", err.message);
  }
}

function areaTable(result, n, legend) {
  const wrap = document.createElement("div");
  wrap.className = "area-result";
  const title = document.createElement("div");
  const res = result.resolution_m ? `, at ${formatValue(result.resolution_m)} m` : "";
  title.textContent = `AOI ${n}${res}${result.nodata_pixels ? `, ${result.nodata_pixels.toLocaleString()} nodata px` : ""}`;
  const table = document.createElement("table");
  table.className = "areas";
  table.innerHTML = "<thead><tr><th>class</th><th>area</th><th>%</th><th>pixels</th></tr></thead>";
  const body = document.createElement("tbody");
  const total = (result.classes || []).reduce((sum, c) => sum + c.area_m2, 0);
  for (const c of result.classes || []) {
    const tr = document.createElement("tr");
    tr.dataset.class = c.class;
    tr.dataset.areaM2 = c.area_m2;
    const name = document.createElement("td");
    name.append(swatch(legend[c.class]?.colour), ` ${c.class} ${c.class === 0 ? "background" : legend[c.class]?.name || ""}`);
    tr.append(name);
    for (const text of [formatArea(c.area_m2, total), (100 * c.fraction).toFixed(1), c.pixels.toLocaleString()]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    body.append(tr);
  }
  table.append(body);
  wrap.append(title, table);
  return wrap;
}

function watchAoi(layer) {
  layer.on("pm:edit", () => computeAreas());
}

function setupDrawing() {
  if (!map.pm) {
    showError("Map library", "Leaflet-Geoman did not load: drawing areas is unavailable.");
    return;
  }
  map.pm.addControls({
    position: "topleft", drawMarker: false, drawCircleMarker: false, drawPolyline: false, drawCircle: false,
    drawText: false, cutPolygon: false, rotateMode: false, dragMode: false,
    drawRectangle: true, drawPolygon: true, editMode: true, removalMode: true,
  });
  map.on("pm:create", (e) => {
    app.aois.addLayer(e.layer);
    watchAoi(e.layer);
    computeAreas();
  });
  map.on("pm:remove", (e) => {
    app.aois.removeLayer(e.layer);
    computeAreas();
  });
}

function restoreAois(geometries) {
  for (const g of geometries || []) {
    L.geoJSON(g).eachLayer((layer) => { app.aois.addLayer(layer); watchAoi(layer); });
  }
}

// ---------------------------------------------------------------- algorithms
function fillAlgorithms(list) {
  const select = $("algorithm-select");
  for (const a of list) {
    if (!a.parameters || !("invert" in a.parameters)) continue;  // segmentation algorithms only
    app.algorithms[a.id] = a;
    select.add(new Option(a.title ? `${a.id} — ${a.title}` : a.id, a.id));
  }
}

function buildParams(values) {
  const a = app.algorithms[algorithmId()];
  $("algorithm-description").textContent = a?.description || "";
  params.build(a?.parameters || {}, values);
}

function carriedParams() {
  const schema = app.algorithms[algorithmId()]?.parameters || {};
  const old = params.values();
  const out = {};
  for (const [k, v] of Object.entries(old)) {
    if (k in schema && k !== "threshold" && k !== "thresholds") out[k] = v;
  }
  if (out.scope === "fixed") delete out.scope;
  return out;
}

// ---------------------------------------------------------------- wiring
function wire() {
  $("source-select").addEventListener("change", () => {
    showSourceForm();
    if (!sourceFormKind()) openSource(sourceFromForm(), { fit: true });
  });
  $("open-source").addEventListener("click", () => openSource(sourceFromForm(), { fit: true }));
  for (const id of ["cog-url", "stac-url", "stacapi-collection", "stacapi-api"]) {
    $(id).addEventListener("keydown", (e) => { if (e.key === "Enter") openSource(sourceFromForm(), { fit: true }); });
  }
  $("band-select").addEventListener("change", () => {
    applyBandHint();
    $("expression").hidden = $("band-select").value !== "custom";
    if ($("band-select").value !== "custom" || $("expression").value.trim()) update();
  });
  $("expression").addEventListener("change", () => update());
  $("algorithm-select").addEventListener("change", () => {
    const values = carriedParams();
    buildParams(values);
    update();
  });
  $("imagery-select").addEventListener("change", () => update());
  $("mask-opacity").addEventListener("input", () => {
    if (app.layers.mask) app.layers.mask.setOpacity(Number($("mask-opacity").value));
    saveState();
  });
  $("outlines").addEventListener("change", () => update());
  for (const id of ["mask-asset", "mask-values", "mask-bits"]) $(id).addEventListener("change", () => update());
  $("lock-threshold").addEventListener("click", () => lockThreshold());
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const input = $(button.dataset.copy);
      input.select();
      try { await navigator.clipboard.writeText(input.value); } catch { document.execCommand("copy"); }
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = "Copy"; }, 1200);
    });
  }
  map.on("moveend", () => { if (!app.restoring) saveState(); });
}

async function init() {
  wire();
  setupDrawing();
  time = setupTime({ map, app, maskEntries, update: () => update(), showError, clearErrors, palette });
  const state = readState();
  let sources = [], algorithms = { algorithms: [] };
  try {
    [sources, algorithms] = await Promise.all([fetchJSON("/sources"), fetchJSON("/algorithms")]);
  } catch (err) {
    showError("Server", err.message);
  }
  app.sources = sources;
  const select = $("source-select");
  sources.forEach((s, i) => select.add(new Option(s.title || s.url, `src:${i}`)));
  select.add(new Option("Paste a COG URL…", "cog"));
  if (CONFIG.families.includes("stac")) select.add(new Option("STAC Item URL…", "stac"));
  if (CONFIG.families.includes("stacapi")) select.add(new Option("STAC API collection…", "stacapi"));
  if (CONFIG.stacApiUrl) $("stacapi-api").placeholder = `STAC API URL (default ${CONFIG.stacApiUrl})`;

  fillAlgorithms(algorithms.algorithms || []);
  if (state.algorithm && app.algorithms[state.algorithm]) $("algorithm-select").value = state.algorithm;
  buildParams(state.params || {});
  app.keepParams = Boolean(state.params);
  if (state.imagery) $("imagery-select").value = state.imagery;
  if (state.opacity) $("mask-opacity").value = state.opacity;
  $("outlines").checked = state.outlines === "1";
  if (state.expression) $("expression").value = state.expression;
  $("mask-asset").value = state.mask_asset || "";
  $("mask-values").value = state.mask_values || "";
  $("mask-bits").value = state.mask_bits || "";
  if (state.band) $("band-select").dataset.wanted = state.band;
  restoreAois(state.aoi);

  let source = null;
  if (state.kind) {
    const i = sources.findIndex((s) => (s.kind || "cog") === state.kind && s.url === state.url);
    if (i >= 0) select.value = `src:${i}`;
    else {
      select.value = state.kind;
      if (state.kind === "stacapi") {
        $("stacapi-collection").value = state.collection || "";
        const [start, end] = (state.datetime || "").split("/");
        $("stacapi-start").value = start && start !== ".." ? start.slice(0, 10) : "";
        $("stacapi-end").value = end && end !== ".." ? end.slice(0, 10) : "";
        $("stacapi-api").value = state.api || "";
      } else if ($(`${state.kind}-url`)) {
        $(`${state.kind}-url`).value = state.url || "";
      }
    }
    source = sourceFromForm();
    if (state.kind === "stacapi") source.datetime = state.datetime || source.datetime;
  } else if (sources.length) {
    select.value = "src:0";
    source = sourceFromForm();
  } else {
    select.value = "cog";
  }
  showSourceForm();
  let fit = true;
  if (state.map) {
    const [z, lat, lng] = state.map.split("/").map(Number);
    if ([z, lat, lng].every(Number.isFinite)) { map.setView([lat, lng], z); fit = false; }
  }
  app.restoring = false;
  if (source) await openSource(source, { fit });
  else setStatus("Paste a COG path or URL to start.");
}

init();
