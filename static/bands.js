// Band choices of a source: its bands/assets plus NIR / NDWI / NDVI presets when the
// needed bands can be recognised.

const ROLE_PATTERNS = {
  red: /^(red|b0?4|sr_b4)$/i,
  green: /^(green|b0?3|sr_b3)$/i,
  blue: /^(blue|b0?2|sr_b2)$/i,
  nir: /^(nir|nir08|b0?8|near[ _-]?infra-?red)$/i,
};

function roleOf(text) {
  // Whole text first ("near infrared"), then each word ("B02 (blue)" -> "B02", "blue").
  const candidates = [text, ...text.split(/[\s(),;:/]+/)].filter(Boolean);
  for (const c of candidates) {
    for (const [role, re] of Object.entries(ROLE_PATTERNS)) if (re.test(c)) return role;
  }
  return null;
}

/** Bands of a COG from `/cog/info`: [{name, index, role}]. */
export function cogBands(info) {
  const descs = info.band_descriptions || [];
  const interp = info.colorinterp || [];
  const count = info.count || descs.length;
  const bands = descs.map(([name, desc], i) => {
    let role = desc && desc !== name ? roleOf(desc.trim()) : null;
    const ci = (interp[i] || "").toLowerCase();
    if (!role && ["red", "green", "blue"].includes(ci)) role = ci;
    return { name, label: desc && desc !== name ? `${name} ${desc}` : name, index: i + 1, role };
  });
  const known = bands.some((b) => b.role);
  if (!known && count === 4 && info.dtype === "uint8") {
    // NAIP and most 4-band aerial imagery: R, G, B, NIR without colour interpretation.
    ["red", "green", "blue", "nir"].forEach((r, i) => { bands[i].role = r; });
  } else if (!known && count === 3) {
    ["red", "green", "blue"].forEach((r, i) => { bands[i].role = r; });
  }
  return bands;
}

/** Assets of a STAC Item (names from `/stac/info` or the item): [{name, role}]. */
export function stacBands(names) {
  return names.map((name) => ({ name, label: name, role: roleOf(name) }));
}

/** Expression token of a band: `b4` for a COG band, the asset name (`B08`) for STAC. */
function token(kind, band) {
  return kind === "cog" ? `b${band.index}` : band.name;
}

/** Query entries selecting one band. */
function bandEntries(kind, band) {
  return kind === "cog" ? [["bidx", band.index]] : [["assets", band.name]];
}

/**
 * Band options for the selector: presets first, then every band, then a custom expression.
 * Each option: {key, label, entries, hint} where `hint` are algorithm params that suit it.
 */
export function bandOptions(kind, bands) {
  const byRole = {};
  for (const b of bands) if (b.role && !byRole[b.role]) byRole[b.role] = b;
  const options = [];
  const { nir, green, red, blue } = byRole;
  if (nir) {
    options.push({ key: "nir", label: `NIR (${nir.name}): water is dark`, entries: bandEntries(kind, nir), hint: { invert: true } });
  }
  if (nir && green) {
    const g = token(kind, green), n = token(kind, nir);
    options.push({ key: "ndwi", label: "NDWI (green−NIR)/(green+NIR): water is bright", entries: [["expression", `(${g}-${n})/(${g}+${n})`]], hint: { invert: false } });
  }
  if (nir && red) {
    const r = token(kind, red), n = token(kind, nir);
    options.push({ key: "ndvi", label: "NDVI (NIR−red)/(NIR+red): vegetation is bright", entries: [["expression", `(${n}-${r})/(${n}+${r})`]], hint: { invert: false } });
  }
  for (const b of bands) {
    options.push({ key: kind === "cog" ? b.name : `asset:${b.name}`, label: b.role ? `${b.label} (${b.role})` : b.label, entries: bandEntries(kind, b), hint: {} });
  }
  options.push({ key: "custom", label: "custom expression…", entries: [], hint: {} });
  const rgb = red && green && blue
    ? (kind === "cog" ? [red, green, blue].map((b) => ["bidx", b.index]) : [red, green, blue].map((b) => ["assets", b.name]))
    : null;
  return { options, rgb };
}

/** Query entries of a custom expression (a lone STAC asset name selects that asset). */
export function customEntries(kind, text) {
  const value = (text || "").trim();
  if (!value) return [];
  if (kind !== "cog" && /^[A-Za-z][\w-]*$/.test(value)) return [["assets", value]];
  return [["expression", value]];
}
