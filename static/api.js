// Talking to the server: JSON requests whose errors carry the server's `detail`,
// and the query strings of a source + band + algorithm.

export class ApiError extends Error {
  constructor(status, detail, url) {
    super(`${status ? status + ": " : ""}${detail}`);
    this.status = status;
    this.detail = detail;
    this.url = url;
  }
}

/** Readable text of an error response body (FastAPI `detail` may be a string or a list). */
export function detailText(body, fallback) {
  if (!body || body.detail === undefined) return fallback;
  const d = body.detail;
  if (typeof d === "string") return d;
  if (Array.isArray(d)) {
    return d.map((e) => `${(e.loc || []).filter((p) => p !== "query").join(".")}: ${e.msg}`).join("; ");
  }
  return JSON.stringify(d);
}

/** Fetch JSON; any non-2xx answer or network failure becomes an ApiError with a message. */
export async function fetchJSON(url, options = {}) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (err) {
    throw new ApiError(0, `the server did not answer (${err.message})`, url);
  }
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (!response.ok) {
    throw new ApiError(response.status, detailText(body, text.slice(0, 200) || response.statusText), url);
  }
  return body;
}

/** Why a tile URL failed: the JSON `detail` of its error response. */
export async function tileErrorDetail(url) {
  try {
    const response = await fetch(url);
    if (response.ok) return null;  // it works now (a transient failure)
    const text = await response.text();
    let body = null;
    try { body = JSON.parse(text); } catch { body = null; }
    return `${response.status}: ${detailText(body, text.slice(0, 200) || response.statusText)}`;
  } catch (err) {
    return `the server did not answer (${err.message})`;
  }
}

/** URL prefix of a source's family: /cog, /stac or /stacapi/collections/{id}. */
export function familyPrefix(source) {
  if (source.kind === "stacapi") return `/stacapi/collections/${encodeURIComponent(source.collection || "")}`;
  return `/${source.kind}`;
}

/** Query entries naming the source itself. */
export function sourceEntries(source) {
  if (source.kind === "stacapi") {
    const entries = [];
    if (source.datetime) entries.push(["datetime", source.datetime]);
    if (source.api) entries.push(["api", source.api]);
    return entries;
  }
  return [["url", source.url]];
}

/** Build a query string from [key, value] entries (repeated keys allowed). */
export function queryString(entries) {
  const q = new URLSearchParams();
  for (const [k, v] of entries) if (v !== undefined && v !== null && v !== "") q.append(k, String(v));
  return q.toString();
}
