"""The bundled demo scene (titiler_otsu.demo) and the synthetic COG factory (tests/synthetic.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate
from skimage.filters import threshold_otsu

from tests.synthetic import DEFAULT_ORIGIN, write_cog
from titiler_otsu import demo
from titiler_otsu.demo import (
    BAND_DESCRIPTIONS,
    DEMO_FILENAME,
    ensure_demo_scene,
    generate_demo_scene,
    render_demo_scene,
)

SMALL = 512


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 512 px demo scene, generated once for the read-only tests of this module."""
    return generate_demo_scene(tmp_path_factory.mktemp("demo") / DEMO_FILENAME, size=SMALL)


@pytest.fixture(scope="module")
def small_data(small_demo: Path) -> np.ndarray:
    with rasterio.open(small_demo) as src:
        return src.read()


@pytest.fixture
def fast_generation(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Make ensure_demo_scene generate a small scene; returns the list of generated paths."""
    calls: list[Path] = []
    real = demo.generate_demo_scene

    def small(path: Path, size: int = 2048, seed: int = 7) -> Path:
        calls.append(path)
        return real(path, size=128, seed=seed)

    monkeypatch.setattr(demo, "generate_demo_scene", small)
    return calls


def _valid(data: np.ndarray) -> np.ndarray:
    return (data != 0).any(axis=0)


# ------------------------------------------------------------------ the demo scene


def test_demo_is_a_valid_cog_with_internal_overviews(small_demo: Path) -> None:
    is_valid, errors, _warnings = cog_validate(small_demo, quiet=True)
    assert is_valid and not errors
    with rasterio.open(small_demo) as src:
        assert src.overviews(1)  # internal (no .ovr next to it)
        assert not Path(f"{small_demo}.ovr").exists()
        assert src.profile["compress"] == "deflate"
        assert src.block_shapes[0] == (512, 512)


def test_demo_is_georeferenced_in_utm_with_10m_pixels(small_demo: Path) -> None:
    with rasterio.open(small_demo) as src:
        epsg = src.crs.to_epsg()
        assert 32601 <= epsg <= 32660  # WGS 84 / UTM north
        assert src.res == (10.0, 10.0)
        assert src.transform.b == 0 and src.transform.d == 0  # north-up
        assert 166_000 <= src.bounds.left < src.bounds.right <= 834_000  # inside a UTM zone
        assert 0 < src.bounds.bottom < src.bounds.top < 9_330_000


def test_demo_has_four_uint16_bands_described_like_sentinel2(small_demo: Path) -> None:
    with rasterio.open(small_demo) as src:
        assert src.count == 4
        assert set(src.dtypes) == {"uint16"}
        assert src.descriptions == ("B02 (blue)", "B03 (green)", "B04 (red)", "B08 (NIR)")
        assert src.descriptions == BAND_DESCRIPTIONS
        assert src.nodata == 0


def test_demo_has_a_nodata_wedge_along_the_swath_edge(small_data: np.ndarray) -> None:
    valid = _valid(small_data)
    nodata_fraction = 1.0 - valid.mean()
    assert 0.05 <= nodata_fraction <= 0.35
    # a wedge at the scene edge, not holes: the west edge is valid, the SE corner is not
    assert valid[:, 0].all()
    assert not valid[-1, -1]
    # ...along most of the east edge
    assert (~valid[:, -1]).sum() > valid.shape[0] // 2


def test_demo_has_no_zero_inside_the_valid_swath(small_data: np.ndarray) -> None:
    any_zero = (small_data == 0).any(axis=0)
    all_zero = (small_data == 0).all(axis=0)
    np.testing.assert_array_equal(any_zero, all_zero)  # nodata is all bands or none
    assert small_data[:, _valid(small_data)].min() >= 1


def test_demo_nir_is_bimodal_so_otsu_separates_water(small_data: np.ndarray) -> None:
    nir = small_data[3][_valid(small_data)].astype(np.float64)
    threshold = threshold_otsu(nir)
    water = nir < threshold
    assert 0.05 <= water.mean() <= 0.40
    # the split falls between dark water (NIR ~200-600) and vegetation/soil (>= ~2000)
    assert 800 < threshold < 2500
    assert np.median(nir[water]) < 700
    assert np.median(nir[~water]) > 2200


def test_demo_water_is_moderately_dark_in_the_visible(small_data: np.ndarray) -> None:
    valid = _valid(small_data)
    nir = small_data[3]
    water = valid & (nir < 500)
    assert water.mean() > 0.05
    for band in small_data[:3]:
        assert 150 < np.median(band[water]) < 800


def test_demo_has_bright_clouds(small_data: np.ndarray) -> None:
    valid = _valid(small_data)
    blue = small_data[0][valid]
    assert (blue > 6000).mean() > 0.005
    assert blue.max() <= 10000  # reflectance x 10000, not saturated junk


def test_demo_generation_is_deterministic(tmp_path: Path) -> None:
    a = generate_demo_scene(tmp_path / "a.tif", size=256, seed=3)
    b = generate_demo_scene(tmp_path / "b.tif", size=256, seed=3)
    c = generate_demo_scene(tmp_path / "c.tif", size=256, seed=4)
    with rasterio.open(a) as ra, rasterio.open(b) as rb, rasterio.open(c) as rc:
        np.testing.assert_array_equal(ra.read(), rb.read())
        assert not np.array_equal(ra.read(), rc.read())
    np.testing.assert_array_equal(render_demo_scene(256, seed=3), render_demo_scene(256, seed=3))


def test_generate_writes_atomically_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "dir" / DEMO_FILENAME
    assert generate_demo_scene(target, size=128) == target
    assert sorted(p.name for p in target.parent.iterdir()) == [DEMO_FILENAME]
    assert target.stat().st_mode & 0o044  # readable by others (mkstemp makes 0600 files)


def test_failed_generation_leaves_neither_file_nor_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(demo, "_write_cog", broken)
    with pytest.raises(OSError, match="disk full"):
        generate_demo_scene(tmp_path / DEMO_FILENAME, size=128)
    assert list(tmp_path.iterdir()) == []


def test_render_rejects_tiny_sizes() -> None:
    with pytest.raises(ValueError, match="size"):
        render_demo_scene(16)


# -------------------------------------------------------------- ensure_demo_scene


def test_ensure_demo_scene_generates_the_full_scene_once_into_the_cache_dir(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    path = ensure_demo_scene(cache)
    assert path == cache / DEMO_FILENAME and path.is_file()
    with rasterio.open(path) as src:
        assert (src.width, src.height, src.count) == (2048, 2048, 4)
        assert len(src.overviews(1)) >= 2
    mtime = path.stat().st_mtime_ns
    assert ensure_demo_scene(cache) == path
    assert path.stat().st_mtime_ns == mtime


def test_ensure_demo_scene_reuses_an_existing_file(tmp_path: Path, fast_generation: list[Path]) -> None:
    first = ensure_demo_scene(tmp_path)
    mtime = first.stat().st_mtime_ns
    second = ensure_demo_scene(tmp_path)
    assert second == first == tmp_path / DEMO_FILENAME
    assert second.stat().st_mtime_ns == mtime
    assert fast_generation == [first]  # generated exactly once


def test_ensure_demo_scene_defaults_to_the_user_cache_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast_generation: list[Path]
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    path = ensure_demo_scene()
    assert path == tmp_path / "xdg" / "titiler-otsu" / DEMO_FILENAME
    assert path.is_file()


def test_ensure_demo_scene_is_safe_when_called_concurrently(tmp_path: Path, fast_generation: list[Path]) -> None:
    results: list[Path] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(ensure_demo_scene(tmp_path))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert set(results) == {tmp_path / DEMO_FILENAME}
    assert [p.name for p in tmp_path.iterdir()] == [DEMO_FILENAME]  # no temp files left
    assert cog_validate(tmp_path / DEMO_FILENAME, quiet=True)[0]


# ------------------------------------------------------------ tests/synthetic.py


def _roundtrip(path: Path) -> tuple[np.ndarray, dict]:
    assert cog_validate(path, quiet=True)[0]
    with rasterio.open(path) as src:
        return src.read(), src.profile


def test_write_cog_uint16_with_nodata_roundtrips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(0, 65535, (3, 300, 400), dtype=np.uint16, endpoint=True)
    data[:, :50, :50] = 0
    path = write_cog(tmp_path / "u16.tif", data, nodata=0, band_descriptions=["a", "b", "c"])
    out, profile = _roundtrip(path)
    np.testing.assert_array_equal(out, data)
    assert profile["dtype"] == "uint16" and profile["nodata"] == 0
    assert profile["crs"].to_epsg() == 32633
    assert profile["transform"].c == DEFAULT_ORIGIN[0] and profile["transform"].f == DEFAULT_ORIGIN[1]
    assert profile["transform"].a == 10.0
    assert profile["blockxsize"] == 256
    with rasterio.open(path) as src:
        assert src.descriptions == ("a", "b", "c")
        assert src.overviews(1)


def test_write_cog_float32_with_nan_roundtrips(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data = rng.normal(0.0, 1.0, (200, 300)).astype(np.float32)
    data[10:40, 20:90] = np.nan
    path = write_cog(tmp_path / "f32.tif", data, nodata=float("nan"))
    out, profile = _roundtrip(path)
    assert out.shape == (1, 200, 300)
    np.testing.assert_array_equal(out[0], data)  # NaN == NaN here
    assert profile["dtype"] == "float32" and np.isnan(profile["nodata"])
    with rasterio.open(path) as src:
        assert not src.read_masks(1)[10:40, 20:90].any()


def test_write_cog_uint8_roundtrips(tmp_path: Path) -> None:
    data = (np.arange(64 * 96, dtype=np.int64).reshape(64, 96) % 256).astype(np.uint8)
    path = write_cog(tmp_path / "u8.tif", data)
    out, profile = _roundtrip(path)
    np.testing.assert_array_equal(out[0], data)
    assert profile["dtype"] == "uint8" and profile["nodata"] is None


@pytest.mark.parametrize("dtype", ["int8", "int16", "uint32", "int32", "float64"])
def test_write_cog_roundtrips_other_dtypes(tmp_path: Path, dtype: str) -> None:
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else np.finfo(dtype)
    data = np.linspace(info.min / 4, info.max / 4, 40 * 50).reshape(40, 50).astype(dtype)
    out, profile = _roundtrip(write_cog(tmp_path / f"{dtype}.tif", data))
    np.testing.assert_array_equal(out[0], data)
    assert profile["dtype"] == dtype


def test_write_cog_honours_crs_transform_blocksize_and_no_overviews(tmp_path: Path) -> None:
    from rasterio.transform import from_origin

    transform = from_origin(-10.0, 50.0, 0.001, 0.001)
    data = np.ones((600, 600), dtype=np.int16)
    path = write_cog(tmp_path / "geo.tif", data, crs="EPSG:4326", transform=transform, overviews=False, blocksize=512)
    _out, profile = _roundtrip(path)
    assert profile["crs"].to_epsg() == 4326
    assert profile["transform"].almost_equals(transform)
    assert profile["blockxsize"] == 512
    with rasterio.open(path) as src:
        assert src.overviews(1) == []


def test_write_cog_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="2D or 3D"):
        write_cog(tmp_path / "x.tif", np.zeros(10, dtype=np.uint8))
    with pytest.raises(ValueError, match="descriptions"):
        write_cog(tmp_path / "x.tif", np.zeros((2, 8, 8), np.uint8), band_descriptions=["one"])
    with pytest.raises(ValueError, match="blocksize"):
        write_cog(tmp_path / "x.tif", np.zeros((8, 8), np.uint8), blocksize=100)
