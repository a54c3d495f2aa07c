// The histogram of the analysed band, bars coloured by class, with the Otsu cut(s) marked.

const BACKGROUND_BAR = "#9aa3ad";

/** Class of a value: thresholds below it (reversed with invert), as the server classifies. */
export function classOf(value, thresholds, invert) {
  const k = thresholds.filter((t) => value > t).length;
  return invert ? thresholds.length - k : k;
}

function formatValue(v) {
  if (!Number.isFinite(v)) return "–";
  const a = Math.abs(v);
  if (a !== 0 && (a < 0.01 || a >= 1e5)) return v.toExponential(2);
  return Number.isInteger(v) ? String(v) : v.toFixed(a < 1 ? 3 : 1);
}
export { formatValue };

/**
 * Draw `histogram` ({counts, edges}) into `canvas`.
 * @param {number[]} thresholds the cuts (null entries ignored)
 * @param {string[]} palette colour per class (class 0 = background, drawn grey)
 */
export function drawHistogram(canvas, histogram, thresholds, palette, invert) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width;
  const height = canvas.clientHeight || canvas.height;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const { counts, edges } = histogram;
  if (!counts || !counts.length) return;
  const cuts = (thresholds || []).filter((t) => t !== null && Number.isFinite(t));
  const pad = { left: 4, right: 4, top: 6, bottom: 16 };
  const plotW = width - pad.left - pad.right, plotH = height - pad.top - pad.bottom;
  const lo = edges[0], hi = edges[edges.length - 1];
  const span = hi - lo || 1;
  const x = (v) => pad.left + ((v - lo) / span) * plotW;
  // Square-root scale, topped at the 99.5th percentile bar, so small modes (water) stay visible.
  const sorted = [...counts].sort((a, b) => a - b);
  const top = Math.sqrt(Math.max(1, sorted[Math.floor(0.995 * (sorted.length - 1))]));
  for (let i = 0; i < counts.length; i++) {
    if (!counts[i]) continue;
    const centre = (edges[i] + edges[i + 1]) / 2;
    const cls = classOf(centre, cuts, invert);
    ctx.fillStyle = cls === 0 ? BACKGROUND_BAR : (palette[cls] || "#1f78b4").slice(0, 7);
    const h = Math.min(plotH, (Math.sqrt(counts[i]) / top) * plotH);
    const x0 = x(edges[i]), x1 = Math.max(x0 + 1, x(edges[i + 1]));
    ctx.fillRect(x0, pad.top + plotH - h, x1 - x0, h);
  }
  ctx.strokeStyle = "#c62828";
  ctx.fillStyle = "#c62828";
  ctx.lineWidth = 1.5;
  ctx.font = "10px system-ui, sans-serif";
  for (const t of cuts) {
    const xt = x(t);
    ctx.beginPath();
    ctx.moveTo(xt, pad.top);
    ctx.lineTo(xt, pad.top + plotH);
    ctx.stroke();
    ctx.fillText(formatValue(t), Math.min(xt + 2, width - 30), pad.top + 9);
  }
  ctx.fillStyle = "#56606b";
  ctx.fillText(formatValue(lo), pad.left, height - 3);
  const hiText = formatValue(hi);
  ctx.fillText(hiText, width - pad.right - ctx.measureText(hiText).width, height - 3);
}

/** Value at quantile `q` of a histogram (for a display stretch). */
export function histogramQuantile(histogram, q) {
  const { counts, edges } = histogram;
  const total = counts.reduce((a, b) => a + b, 0);
  if (!total) return null;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i];
    if (seen >= q * total) return q < 0.5 ? edges[i] : edges[i + 1];
  }
  return edges[edges.length - 1];
}
