"""Streaming exports of large or lazy (zarr, dask) labels equal the whole-image ones, with progress and cancel."""

import csv
import json
import math

import numpy as np
import pytest
import zarr
from skimage.draw import ellipse

from napari_prunuclei.base.progress import Cancelled, Progress
from napari_prunuclei.io.export import EXPORT_EXTENSIONS, IN_MEMORY_MAX_PIXELS, export_labels, iter_export
from napari_prunuclei.io.geojson import write_geojson
from napari_prunuclei.io.measure import MEASUREMENT_FIELDS, measurements, one_line, write_csv

SIZE = 2500
BLOCK = 512


def _scene(seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """About 3000 blob nuclei with non-consecutive ids (a few huge), many on block seams, and an H&E-ish image."""
    rng = np.random.default_rng(seed)
    lab = np.zeros((SIZE, SIZE), np.int32)
    centres = [rng.uniform(0, SIZE, 2) for _ in range(2800)]
    seams = np.arange(BLOCK, SIZE, BLOCK)
    for s in seams:  # centred on a seam between blocks, and on a corner of four blocks
        centres += [(s + rng.uniform(-3, 3), rng.uniform(0, SIZE)) for _ in range(25)]
        centres += [(rng.uniform(0, SIZE), s + rng.uniform(-3, 3)) for _ in range(25)]
        centres += [(s + 0.5, t + 0.5) for t in seams]
    ids = rng.choice(np.arange(1, 400_000), len(centres) + 1, replace=False)
    ids[rng.choice(len(ids), 30, replace=False)] = rng.choice(np.arange(3_000_000, 5_000_000), 30, replace=False)
    for (r, c), ident in zip(centres, ids):
        rr, cc = ellipse(r, c, rng.uniform(4, 13), rng.uniform(4, 13), shape=lab.shape,
                         rotation=rng.uniform(0, np.pi))
        free = lab[rr, cc] == 0
        lab[rr[free], cc[free]] = ident
    rr, cc = ellipse(1300, 1250, 12, 700, shape=lab.shape)  # a nucleus wider than a block
    lab[rr, cc] = ids[-1]
    rgb = np.empty((SIZE, SIZE, 3), np.uint8)
    noise = rng.integers(-20, 21, (SIZE, SIZE, 3))
    colour = np.where((lab > 0)[..., None], np.array([90, 60, 150]), np.array([230, 180, 205]))
    rgb[:] = np.clip(colour + noise, 0, 255)
    return lab, rgb


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    lab, rgb = _scene()
    root = tmp_path_factory.mktemp("scene")
    zlab = zarr.open_array(str(root / "labels.zarr"), mode="w", shape=lab.shape, chunks=(500, 700), dtype="int32",
                           fill_value=0)
    zlab[:] = lab
    zrgb = zarr.open_array(str(root / "rgb.zarr"), mode="w", shape=rgb.shape, chunks=(512, 512, 3), dtype="uint8",
                           fill_value=0)
    zrgb[:] = rgb
    ref = tmp_path_factory.mktemp("reference")
    return {"lab": lab, "rgb": rgb, "zlab": zlab, "zrgb": zrgb,
            "csv": write_csv(ref / "whole.csv", lab, rgb), "geojson": write_geojson(ref / "whole.geojson", lab, rgb)}


def _inputs(scene, kind: str):
    if kind == "zarr":
        return scene["zlab"], scene["zrgb"]
    if kind == "dask":
        import dask.array as da

        return da.from_array(scene["lab"], chunks=(640, 900)), da.from_array(scene["rgb"], chunks=(1000, 1000, 3))
    return scene["lab"], scene["rgb"]  # numpy, larger than IN_MEMORY_MAX_PIXELS: block by block as well


def _csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _assert_rows_equal(got: list[dict], want: list[dict]) -> None:
    assert [int(r["id"]) for r in got] == [int(r["id"]) for r in want]
    for g, w in zip(got, want):
        assert int(g["area"]) == int(w["area"])
        for k in ("centroid_y", "centroid_x", "perimeter", "eccentricity", "mean_hematoxylin"):
            assert math.isclose(float(g[k]), float(w[k]), rel_tol=0, abs_tol=1e-6), (g["id"], k)


def test_scene_has_nuclei_across_block_seams(scene):
    lab = scene["lab"]
    ids = np.unique(lab[lab > 0])
    assert 2500 < len(ids) < 4000 and ids.max() > 3_000_000  # sparse ids, a few huge
    for s in range(BLOCK, SIZE, BLOCK):  # nuclei straddle every row and column seam
        assert ((lab[s - 1] > 0) & (lab[s - 1] == lab[s])).sum() > 50
        assert ((lab[:, s - 1] > 0) & (lab[:, s - 1] == lab[:, s])).sum() > 50
    assert np.ptp(np.nonzero(lab == lab[1300, 1250])[1]) > BLOCK  # one nucleus is wider than a block
    assert SIZE * SIZE > IN_MEMORY_MAX_PIXELS


@pytest.fixture(scope="module")
def zarr_csv(scene, tmp_path_factory):
    """The CSV of the zarr labels and image by blocks of 512, and the progress records of its export."""
    records = []
    p = export_labels(tmp_path_factory.mktemp("zarr_csv") / "lazy.csv", scene["zlab"], scene["zrgb"], block=BLOCK,
                      progress=records.append)
    return p, records


@pytest.mark.parametrize("kind", ["zarr", "dask", "numpy"])
def test_csv_by_blocks_equals_whole_image(tmp_path, scene, zarr_csv, kind):
    if kind == "zarr":
        p = zarr_csv[0]
    else:
        p = export_labels(tmp_path / "lazy.csv", *_inputs(scene, kind), block=BLOCK)
    got, want = _csv(p), _csv(scene["csv"])
    assert tuple(got[0]) == MEASUREMENT_FIELDS
    ids = [int(r["id"]) for r in got]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert set(ids) == set(np.unique(scene["lab"][scene["lab"] > 0]).tolist())
    _assert_rows_equal(got, want)


def test_geojson_by_blocks_equals_whole_image(tmp_path, scene):
    p = export_labels(tmp_path / "lazy.geojson", scene["zlab"], scene["zrgb"], block=BLOCK)
    got, want = json.loads(p.read_text()), json.loads(scene["geojson"].read_text())
    assert got["type"] == "FeatureCollection"
    assert [f["id"] for f in got["features"]] == [f["id"] for f in want["features"]]
    assert [int(f["id"]) for f in got["features"]] == sorted(int(f["id"]) for f in got["features"])
    for g, w in zip(got["features"], want["features"]):
        assert g["geometry"] == w["geometry"]  # identical polygons
        gm, wm = g["properties"].pop("measurements"), w["properties"].pop("measurements")
        assert g["properties"] == w["properties"]
        assert set(gm) == set(wm)
        for k in gm:
            assert math.isclose(gm[k], wm[k], rel_tol=0, abs_tol=1e-6), (g["id"], k)


def test_json_extension_and_no_image(tmp_path, scene):
    lab = scene["lab"][:1100, :900]
    crop = zarr.open_array(str(tmp_path / "crop.zarr"), mode="w", shape=lab.shape, chunks=(256, 256), dtype="int32")
    crop[:] = lab
    p = export_labels(tmp_path / "n.json", crop, block=256)
    want = json.loads(write_geojson(tmp_path / "w.geojson", lab).read_text())
    assert json.loads(p.read_text()) == want  # no image: measurements without mean hematoxylin, same text
    rows = _csv(export_labels(tmp_path / "n.csv", crop, block=256))
    assert all(r["mean_hematoxylin"] == "nan" for r in rows)
    _assert_rows_equal([{**r, "mean_hematoxylin": 0} for r in rows],
                       [{**r, "mean_hematoxylin": 0} for r in measurements(lab)])


def test_mean_hematoxylin_is_finite_for_every_nucleus(zarr_csv):
    values = np.array([float(r["mean_hematoxylin"]) for r in _csv(zarr_csv[0])])
    assert len(values) > 2500 and np.isfinite(values).all() and (values > 0).all()


def test_progress_one_record_per_block_of_each_pass(zarr_csv):
    p, records = zarr_csv
    blocks = math.ceil(SIZE / BLOCK) ** 2
    assert all(isinstance(r, Progress) and r.total == 2 * blocks + 1 for r in records)
    assert [r.done for r in records] == list(range(1, 2 * blocks + 2))
    assert records[-1].fraction == 1.0 and p.name in records[-1].message


def test_iter_export_is_a_job_returning_the_path(tmp_path, scene):
    gen = iter_export(tmp_path / "n.tif", scene["zlab"], block=1024)
    records = []
    while True:
        try:
            records.append(next(gen))
        except StopIteration as stop:
            out = stop.value
            break
    assert out == tmp_path / "n.tif" and out.is_file() and len(records) == 2 * 9 + 1
    assert [f.name for f in tmp_path.iterdir()] == ["n.tif"]


@pytest.mark.parametrize("ext", [".csv", ".geojson", ".tif"])
def test_cancel_after_two_blocks_leaves_nothing(tmp_path, scene, ext):
    out = tmp_path / "out"
    out.mkdir()
    calls, seen = [], []

    def cancelled() -> bool:
        calls.append(1)
        return len(calls) > 2  # checked before each block: cancelled after the 2nd block

    with pytest.raises(Cancelled):
        export_labels(out / f"n{ext}", scene["zlab"], scene["zrgb"], block=BLOCK, cancelled=cancelled,
                      progress=seen.append)
    assert len(seen) == 2
    assert list(out.iterdir()) == []


def test_failed_read_leaves_nothing(tmp_path, scene):
    class Flaky:
        """A lazy array whose 30th read fails (in the second pass)."""

        def __init__(self, a):
            self.a, self.shape, self.dtype, self.reads = a, a.shape, a.dtype, 0

        def __getitem__(self, key):
            self.reads += 1
            if self.reads == 30:
                raise OSError("disk gone")
            return self.a[key]

    for ext in (".csv", ".geojson", ".tif"):
        with pytest.raises(OSError, match="disk gone"):
            export_labels(tmp_path / f"n{ext}", Flaky(scene["zlab"]), block=BLOCK)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["labels.txt", "labels", "labels.zarr"])
def test_unknown_extension_is_a_clear_error(tmp_path, name):
    lab = np.zeros((64, 64), np.int32)
    with pytest.raises(ValueError) as err:
        export_labels(tmp_path / name, lab)
    msg = str(err.value)
    assert str(tmp_path / name) in msg and all(e in msg for e in EXPORT_EXTENSIONS)
    with pytest.raises(ValueError, match="no extension" if "." not in name else "extension"):
        next(iter_export(tmp_path / name, lab))
    assert list(tmp_path.iterdir()) == []


def test_bad_inputs_are_clear_errors(tmp_path, scene):
    with pytest.raises(ValueError, match="2-D integer"):
        export_labels(tmp_path / "n.csv", np.zeros((64, 64), np.float32))
    with pytest.raises(ValueError, match="shape"):
        export_labels(tmp_path / "n.csv", scene["zlab"], np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="negative"):
        export_labels(tmp_path / "n.csv", np.full((3000, 3000), -1, np.int32))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bigtiff", [False, True])
def test_tiled_tiff_from_zarr_round_trips(tmp_path, scene, monkeypatch, bigtiff):
    import tifffile

    from napari_prunuclei.io import export

    if bigtiff:
        monkeypatch.setattr(export, "_BIGTIFF_BYTES", 1024)  # as if the image were over 4 GB
    p = export_labels(tmp_path / "n.tif", scene["zlab"], block=BLOCK)
    with tifffile.TiffFile(p) as tif:
        assert tif.is_bigtiff == bigtiff
        page = tif.pages[0]
        assert page.is_tiled and (page.tilelength, page.tilewidth) == (BLOCK, BLOCK)
        assert page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        assert page.dtype == np.uint32  # ids above 65535
        back = page.asarray()
    assert back.shape == (SIZE, SIZE) and np.array_equal(back, scene["lab"])


def test_png_from_zarr(tmp_path, scene):
    import imageio.v3 as iio

    small = scene["lab"] % 60000
    z = zarr.open_array(str(tmp_path / "s.zarr"), mode="w", shape=small.shape, chunks=(1024, 1024), dtype="int32")
    z[:] = small
    p = export_labels(tmp_path / "n.png", z)
    assert np.array_equal(iio.imread(p), small)
    with pytest.raises(ValueError, match="16-bit PNG"):
        export_labels(tmp_path / "big.png", scene["zlab"])
    assert not (tmp_path / "big.png").exists()


def _shoelace(ring) -> float:
    x, y = np.array(ring).T
    return 0.5 * float(np.sum(x[:-1] * y[1:] - x[1:] * y[:-1]))


def test_geojson_pixel_corners_holes_and_parts(tmp_path):
    """QuPath's convention: pixel (r, c) covers [c, c+1] x [r, r+1]; holes are interior rings; a nucleus
    in two separate parts is a MultiPolygon."""
    lab = np.zeros((64, 64), np.int32)
    lab[10:14, 20:24] = 1  # a 4 x 4 square
    lab[30:40, 30:40] = 2
    lab[33:37, 33:37] = 0  # with a hole
    lab[50:53, 5:8] = 3
    lab[50:53, 20:23] = 3  # in two parts
    doc = json.loads(export_labels(tmp_path / "n.geojson", lab).read_text())
    geo = {int(f["id"]): f["geometry"] for f in doc["features"]}
    square = np.array(geo[1]["coordinates"][0])
    assert square[:, 0].min() == 20 and square[:, 0].max() == 24
    assert square[:, 1].min() == 10 and square[:, 1].max() == 14
    assert geo[2]["type"] == "Polygon" and len(geo[2]["coordinates"]) == 2
    outer, hole = geo[2]["coordinates"]
    assert _shoelace(outer) > 0 > _shoelace(hole)
    hx, hy = np.array(hole).T
    assert hx.min() == 33 and hx.max() == 37 and hy.min() == 33 and hy.max() == 37
    assert geo[3]["type"] == "MultiPolygon" and len(geo[3]["coordinates"]) == 2


@pytest.mark.parametrize("ext", [".csv", ".geojson", ".tif"])
@pytest.mark.parametrize("lazy", [False, True])
def test_provenance_in_every_format_and_no_silent_overwrite(tmp_path, ext, lazy):
    import tifffile

    lab = np.zeros((300, 300), np.int32)
    lab[10:20, 10:20], lab[100:130, 200:215] = 1, 2
    data = zarr.open_array(str(tmp_path / "l.zarr"), mode="w", shape=lab.shape, chunks=(64, 64),
                           dtype="int32") if lazy else lab
    if lazy:
        data[:] = lab
    prov = {"image": "tile A", "model": "network-wide CR20", "sha256": {"semantic": "ab" * 32}, "cr": 20.0}
    p = export_labels(tmp_path / f"n{ext}", data, provenance=prov, block=128)
    if ext == ".csv":
        text = p.read_text()
        assert "# model: network-wide CR20\n" in text and '# cr: 20.0\n' in text
        rows = list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))
        assert [int(r["id"]) for r in rows] == [1, 2]
    elif ext == ".geojson":
        doc = json.loads(p.read_text())
        assert doc["properties"] == prov and len(doc["features"]) == 2
    else:
        with tifffile.TiffFile(p) as tf:
            assert json.loads(tf.pages[0].description) == prov
            assert np.array_equal(tf.asarray(), lab)
    before = p.read_bytes()
    with pytest.raises(FileExistsError, match="exists"):
        export_labels(p, data, overwrite=False)
    assert p.read_bytes() == before


@pytest.mark.parametrize("lazy", [False, True])
def test_pixel_size_adds_micron_columns_and_offset_places_a_region(tmp_path, scene, lazy):
    """With a pixel size, CSV and GeoJSON carry area in µm² and perimeter in µm; an offset (a region's
    corner) moves centroids and polygons into the image's frame; streamed and whole agree."""
    lab = scene["lab"][:600, :700]
    rgb = scene["rgb"][:600, :700]
    if lazy:
        import dask.array as da

        lab, rgb = da.from_array(lab, chunks=(256, 256)), da.from_array(rgb, chunks=(256, 256, 3))
    kw = {"pixel_size": 0.5, "offset": (1000, 2000), "block": 256}
    p = export_labels(tmp_path / "n.csv", lab, rgb, **kw)
    got, plain = _csv(p), measurements(np.asarray(lab), np.asarray(rgb))
    assert list(got[0]) == [*MEASUREMENT_FIELDS, "area_um2", "perimeter_um"]
    assert len(got) == len(plain)
    for g, w in zip(got, plain):
        assert float(g["area_um2"]) == pytest.approx(w["area"] * 0.25)
        assert float(g["perimeter_um"]) == pytest.approx(w["perimeter"] * 0.5)
        assert float(g["centroid_y"]) == pytest.approx(w["centroid_y"] + 1000)
        assert float(g["centroid_x"]) == pytest.approx(w["centroid_x"] + 2000)
    doc = json.loads(export_labels(tmp_path / "n.geojson", lab, rgb, **kw).read_text())
    ref = json.loads(export_labels(tmp_path / "ref.geojson", lab, rgb, block=256).read_text())
    f, r = doc["features"][0], ref["features"][0]
    assert f["properties"]["measurements"]["area_um2"] == pytest.approx(r["properties"]["measurements"]["area"] / 4)
    ring, ring0 = np.array(f["geometry"]["coordinates"][0]), np.array(r["geometry"]["coordinates"][0])
    assert np.allclose(ring - ring0, [2000, 1000])  # x, y


@pytest.mark.parametrize("ext", [".tif", ".csv", ".geojson"])
@pytest.mark.parametrize("dtype,big", [(np.int64, 2**32 + 1), (np.uint64, 2**63 - 1), (np.uint32, 2**31)])
def test_in_memory_exports_keep_every_id(tmp_path, ext, dtype, big):
    import tifffile

    from napari_prunuclei.io.export import export_labels

    lab = np.zeros((64, 64), dtype)
    lab[5:20, 5:20], lab[30:50, 30:50] = 7, big
    p = export_labels(tmp_path / f"l{ext}", lab)
    if ext == ".tif":
        back = tifffile.imread(p)
        assert set(np.unique(back).tolist()) == {0, 7, big}
    elif ext == ".csv":
        ids = [int(line.split(",")[0]) for line in p.read_text().splitlines()[1:]]
        assert sorted(ids) == [7, big]
    else:
        feats = json.loads(p.read_text())["features"]
        assert sorted(int(f["id"]) for f in feats) == [7, big]


@pytest.mark.parametrize("ext", [".tif", ".png", ".csv", ".geojson"])
def test_negative_ids_are_refused_on_every_path(tmp_path, ext):
    from napari_prunuclei.io.export import export_labels

    lab = np.zeros((64, 64), np.int32)
    lab[5:20, 5:20] = -7
    with pytest.raises(ValueError, match="negative ids"):
        export_labels(tmp_path / f"l{ext}", lab)
    assert not (tmp_path / f"l{ext}").exists()


def test_a_nucleus_whose_parts_touch_at_a_corner_keeps_both_parts(tmp_path):
    from napari_prunuclei.io.export import export_labels

    lab = np.zeros((40, 40), np.int32)
    lab[5:15, 5:15] = 3
    lab[15:25, 15:25] = 3  # touches the first part only at the corner (14, 14)-(15, 15)
    feats = json.loads(export_labels(tmp_path / "c.geojson", lab).read_text())["features"]
    geom = feats[0]["geometry"]
    assert geom["type"] == "MultiPolygon" and len(geom["coordinates"]) == 2

    def area(ring):
        x, y = np.array(ring).T
        return abs(0.5 * float(np.sum(x[:-1] * y[1:] - x[1:] * y[:-1])))

    assert sum(area(p[0]) for p in geom["coordinates"]) == pytest.approx(200, abs=2)  # corners cut by 1/8 px²


def test_bad_export_arguments_are_refused_and_bool_labels_exported(tmp_path):
    from napari_prunuclei.io.export import export_labels

    lab = np.zeros((64, 64), bool)
    lab[5:20, 5:20] = True
    rows = export_labels(tmp_path / "b.csv", lab).read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("1,")
    rgb = np.zeros((64, 64, 3), np.float32)
    for kw, why in ((dict(pixel_size=-0.5), "pixel size"), (dict(pixel_size=float("nan")), "pixel size"),
                    (dict(rgb=rgb), "uint8")):
        with pytest.raises(ValueError, match=why):
            export_labels(tmp_path / "x.csv", lab.astype(np.int32), **kw)


def _disagreeing_pair():
    """B and A with a 1 -> 3 split, a 2 -> 1 merge, a missed, an extra and a matched nucleus."""
    b = np.zeros((40, 60), np.int32)
    a = np.zeros_like(b)
    b[2:12, 2:20] = 41
    a[2:12, 2:8], a[2:12, 8:14], a[2:12, 14:20] = 88, 90, 91
    a[20:30, 2:20] = 7
    b[20:30, 2:11], b[20:30, 11:20] = 5, 6
    b[2:10, 30:38] = 9
    a[20:28, 30:38] = 3
    b[30:38, 45:55], a[30:38, 45:56] = 12, 13
    return b, a


@pytest.mark.parametrize("ext", [".geojson", ".csv"])
def test_disagreement_events_round_trip_one_feature_or_row_each(tmp_path, ext):
    """One GeoJSON feature (a QuPath annotation classed by kind) or CSV row per event, with its kind, both
    models' ids, area and centroid in the image's frame; outlines as the nuclei export draws them."""
    from napari_prunuclei.base.progress import drive
    from napari_prunuclei.io.export import iter_export_regions
    from napari_prunuclei.nuclei.agreement import disagreement, event_regions

    b, a = _disagreeing_pair()
    d = disagreement(b, a)
    prov = {"image": "tile", "counts": d.counts}
    off = (100, 200)
    p = drive(iter_export_regions(tmp_path / f"dis{ext}", event_regions(d.events), provenance=prov,
                                  pixel_size=0.5, offset=off))
    if ext == ".geojson":
        doc = json.loads(p.read_text())
        assert doc["properties"] == prov and len(doc["features"]) == len(d.events) == 4
        for f, e in zip(doc["features"], d.events):
            props = f["properties"]
            assert props["kind"] == e.kind == props["classification"]["name"] and props["objectType"] == "annotation"
            assert props["a_ids"] == list(e.a_ids) and props["b_ids"] == list(e.b_ids)
            assert props["area_px"] == e.area and props["measurements"]["area_um2"] == pytest.approx(e.area / 4)
            assert props["centroid_y"] == pytest.approx(e.centroid[0] + off[0])  # named (a pair read as [x, y])
            assert props["centroid_x"] == pytest.approx(e.centroid[1] + off[1])
            assert "centroid" not in props
            assert len(props["classification"]["color"]) == 3
        split = next(f for f in doc["features"] if f["properties"]["kind"] == "split")
        assert split["properties"]["classification"]["color"] == [255, 208, 0]
        assert split["properties"]["b_ids"] == [41] and split["properties"]["a_ids"] == [88, 90, 91]
        nuclei = json.loads(write_geojson(tmp_path / "b.geojson", b, offset=off).read_text())
        b41 = next(f for f in nuclei["features"] if f["id"] == "41")
        assert split["geometry"] == b41["geometry"]  # the split covers B #41 exactly: the same outline
    else:
        text = p.read_text()
        assert text.startswith("# image: tile\n")
        rows = list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))
        assert list(rows[0]) == ["id", "kind", "a_ids", "b_ids", "area_px", "centroid_y", "centroid_x", "area_um2"]
        assert len(rows) == len(d.events)
        assert [r["kind"] for r in rows] == [e.kind for e in d.events]
        assert [r["a_ids"] for r in rows] == [";".join(map(str, e.a_ids)) for e in d.events]
        assert [r["b_ids"] for r in rows] == [";".join(map(str, e.b_ids)) for e in d.events]
        split = next(r for r in rows if r["kind"] == "split")
        assert split["a_ids"] == "88;90;91" and int(split["area_px"]) == 180
        assert float(split["centroid_y"]) == pytest.approx(106.5) and float(split["centroid_x"]) == pytest.approx(210.5)
    with pytest.raises(ValueError, match="geojson"):
        drive(iter_export_regions(tmp_path / "dis.tif", event_regions(d.events)))


def test_region_export_cancels_between_regions_and_escapes_provenance(tmp_path):
    """Hostile pass: cancel was checked once before all regions; a newline in a provenance value broke the CSV."""
    import numpy as np
    import pytest

    from napari_prunuclei.base.progress import Cancelled, drive
    from napari_prunuclei.io.export import iter_export_regions
    from napari_prunuclei.io.geojson import Region

    mask = np.ones((3, 3), bool)
    regions = [Region("extra", (48, 96, 255), mask, (4 * k, 0), {"kind": "extra"}) for k in range(200)]
    calls = []

    def cancelled() -> bool:
        calls.append(1)
        return len(calls) > 2

    out = tmp_path / "r.geojson"
    with pytest.raises(Cancelled):
        drive(iter_export_regions(out, regions, cancelled=cancelled))
    assert not out.exists() and not list(tmp_path.iterdir())
    csv_out = tmp_path / "r.csv"
    drive(iter_export_regions(csv_out, regions[:2], provenance={"image": "bad\nname.tif"}))
    lines = csv_out.read_text().splitlines()
    assert lines[0] == '# image: "bad\\nname.tif"' and lines[1].startswith("id,")


@pytest.mark.parametrize("provenance", [None, {"image": "tile"}])
def test_a_label_tiff_export_carries_the_pixel_size(tmp_path, provenance):
    """Reviewer: a pixel size typed in the widget reached the TIFF's description only; reopened beside its
    image (QuPath, napari) the labels were in pixels."""
    import tifffile

    from napari_prunuclei.io.pixel_size import read_pixel_size

    lab = np.zeros((64, 64), np.int32)
    lab[10:20, 10:20] = 3
    export_labels(tmp_path / "a.tif", lab, pixel_size=0.2527, provenance=provenance)
    assert read_pixel_size(tmp_path / "a.tif") == pytest.approx(0.2527)
    assert np.array_equal(tifffile.imread(tmp_path / "a.tif"), lab)
    export_labels(tmp_path / "b.tif", lab, provenance=provenance)
    assert read_pixel_size(tmp_path / "b.tif") is None


def test_one_line_keeps_plain_text_and_writes_anything_else_as_json():
    assert one_line("tile 1.tif") == "tile 1.tif"
    assert one_line("a\nb") == '"a\\nb"' and one_line("a\u2028b") == '"a\\u2028b"' and one_line(0.5) == "0.5"
    assert "\n" not in one_line(["x\ny"])
