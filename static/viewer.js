// Minimal viewer: imagery + Otsu mask overlay for the server's sources.
(async function () {
  const map = L.map("map");
  L.tileLayer("https://tile.openstreetmap.org/{z}/{x}/{y}.png", {
    attribution: "&copy; OpenStreetMap contributors", maxZoom: 19,
  }).addTo(map);
  const $ = (id) => document.getElementById(id);
  let imagery = null, mask = null;

  function showError(msg) { $("error").textContent = msg || ""; }

  async function refresh() {
    const src = JSON.parse($("source").value || "null");
    if (!src) return;
    const bidx = $("bidx").value;
    const params = { scope: "dataset", invert: $("invert").checked };
    const q = new URLSearchParams({ url: src.url, bidx: bidx });
    const mq = new URLSearchParams({ url: src.url, bidx: bidx, algorithm: $("algorithm").value,
                                     algorithm_params: JSON.stringify(params) });
    const thr = await fetch(`/cog/threshold?${mq}`);
    const body = await thr.json();
    if (!thr.ok) { showError(body.detail); return; }
    showError("");
    $("thresholds").textContent = `thresholds: ${body.thresholds.join(", ")}`;
    const lo = body.histogram.edges[0], hi = body.histogram.edges[body.histogram.edges.length - 1];
    q.set("rescale", `${lo},${hi}`);
    if (imagery) map.removeLayer(imagery);
    if (mask) map.removeLayer(mask);
    imagery = L.tileLayer(`/cog/tiles/WebMercatorQuad/{z}/{x}/{y}.png?${q}`, { maxZoom: 22 }).addTo(map);
    mask = L.tileLayer(`/cog/tiles/WebMercatorQuad/{z}/{x}/{y}.png?${mq}`, { maxZoom: 22, opacity: 0.8 }).addTo(map);
    const b = src.bounds;
    map.fitBounds([[b[1], b[0]], [b[3], b[2]]]);
  }

  const sources = await (await fetch("/sources")).json();
  for (const s of sources) {
    const o = document.createElement("option");
    o.value = JSON.stringify(s); o.textContent = s.title; $("source").appendChild(o);
  }
  for (const id of ["source", "bidx", "algorithm", "invert"]) $(id).addEventListener("change", refresh);
  if (sources.length) refresh(); else map.setView([0, 0], 2);
})();
