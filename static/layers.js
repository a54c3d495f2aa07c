// Map layers: our XYZ tile layers (failed tiles reported with the server's message) and the
// class-outline layer fed by `/vectors`.

import { fetchJSON, tileErrorDetail } from "./api.js";

const TILE_SIZE = 512;  // one 512-px tile == four 256-px tiles (seamless), 4x fewer requests

/**
 * An XYZ layer on `{prefix}/tiles/WebMercatorQuad/{z}/{x}/{y}.png?{query}`.
 * @param {Function} onError called once per distinct failure message, with `(name, message)`
 */
export function otsuTileLayer(prefix, query, { name, bounds, maxzoom, opacity, zIndex, onError }) {
  const url = `${prefix}/tiles/WebMercatorQuad/{z}/{x}/{y}.png?${query}&tilesize=${TILE_SIZE}`;
  const layer = L.tileLayer(url, {
    tileSize: TILE_SIZE,
    zoomOffset: -1,
    minZoom: 1,
    maxZoom: 24,
    maxNativeZoom: maxzoom !== undefined ? maxzoom + 1 : undefined,
    bounds: bounds ? L.latLngBounds([[bounds[1], bounds[0]], [bounds[3], bounds[2]]]) : undefined,
    opacity,
    zIndex,
    crossOrigin: true,
  });
  const reported = new Set();
  layer.on("tileerror", async (event) => {
    const message = await tileErrorDetail(event.tile.src);
    if (message && !reported.has(message)) {
      reported.add(message);
      onError(name, message);
    }
  });
  layer.otsuName = name;
  return layer;
}

/** `z/x/y` of a 512-px grid cell: at map zoom z it is the tile of zoom z-1 (see TILE_SIZE). */
function tileKey(coords) {
  return `${coords.z - 1}/${coords.x}/${coords.y}`;
}

/** Outlines of the class polygons of every visible tile, from `{prefix}/vectors/...`. */
export function vectorLayer(prefix, query, { palette, bounds, maxzoom, onError }) {
  const group = L.featureGroup();
  const renderer = L.canvas({ padding: 0.2 });
  const features = new Map();
  let failed = false;
  const Grid = L.GridLayer.extend({
    createTile(coords, done) {
      const tile = document.createElement("div");
      const key = tileKey(coords);
      const url = `${prefix}/vectors/WebMercatorQuad/${key}?${query}&tilesize=${TILE_SIZE}`;
      fetchJSON(url)
        .then((fc) => {
          if (!this._map) return;
          const layer = L.geoJSON(fc, {
            renderer,
            style: (f) => ({
              color: (palette[f.properties.class] || "#1f78b4").slice(0, 7),
              weight: 1.5,
              fill: false,
            }),
          });
          features.set(key, layer);
          group.addLayer(layer);
          done(null, tile);
        })
        .catch((err) => {
          if (!failed) { failed = true; onError("Class outlines", err.message); }
          done(err, tile);
        });
      return tile;
    },
  });
  const grid = new Grid({
    tileSize: TILE_SIZE,
    minZoom: 1,
    maxNativeZoom: maxzoom !== undefined ? maxzoom + 1 : undefined,
    bounds: bounds ? L.latLngBounds([[bounds[1], bounds[0]], [bounds[3], bounds[2]]]) : undefined,
  });
  grid.on("tileunload", (e) => {
    const key = tileKey(e.coords);
    const layer = features.get(key);
    if (layer) { group.removeLayer(layer); features.delete(key); }
  });
  return L.layerGroup([grid, group]);
}
