// The viewer's state lives in the URL fragment, so any view is a shareable link.

const KEYS = ["kind", "url", "collection", "datetime", "api", "band", "expression", "algorithm",
  "params", "imagery", "opacity", "outlines", "map", "aoi", "mask_asset", "mask_values", "mask_bits"];

/** State from `location.hash` (strings; `params` and `aoi` parsed from JSON). */
export function readState() {
  const q = new URLSearchParams(location.hash.replace(/^#/, ""));
  const state = {};
  for (const k of KEYS) if (q.has(k)) state[k] = q.get(k);
  for (const k of ["params", "aoi"]) {
    if (state[k]) {
      try { state[k] = JSON.parse(state[k]); } catch { delete state[k]; }
    }
  }
  return state;
}

/** Write `state` into the fragment without adding a history entry. */
export function writeState(state) {
  const q = new URLSearchParams();
  for (const k of KEYS) {
    const v = state[k];
    if (v === undefined || v === null || v === "") continue;
    q.set(k, typeof v === "object" ? JSON.stringify(v) : String(v));
  }
  history.replaceState(null, "", `${location.pathname}${location.search}#${q.toString()}`);
}
