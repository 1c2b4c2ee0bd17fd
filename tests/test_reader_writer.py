import json

import numpy as np
import pytest

from napari_prunuclei.gui.reader import get_reader
from napari_prunuclei.gui.writer import write_labels
from napari_prunuclei.io.export import export_labels
from napari_prunuclei.io.labels import read_labels
from napari_prunuclei.io.measure import MEASUREMENT_FIELDS, measurements
from napari_prunuclei.nuclei.synthetic import synthetic_tile


@pytest.fixture
def tile():
    return synthetic_tile(160, seed=2)


@pytest.mark.parametrize("ext", [".tif", ".png"])
def test_writer_label_round_trip(tmp_path, tile, ext):
    _, lab = tile
    out = write_labels(str(tmp_path / f"l{ext}"), lab, {})
    assert np.array_equal(read_labels(out[0]), lab)


def test_geojson_keeps_every_nucleus(tmp_path, tile):
    rgb, lab = tile
    p = export_labels(tmp_path / "n.geojson", lab, rgb)
    doc = json.loads(p.read_text())
    assert doc["type"] == "FeatureCollection"
    ids = sorted(int(f["id"]) for f in doc["features"])
    assert ids == sorted(np.unique(lab[lab > 0]).tolist())
    f = doc["features"][0]
    ring = f["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) >= 4
    assert {"area", "perimeter", "eccentricity", "mean_hematoxylin"} <= set(f["properties"]["measurements"])
    # the polygon lies on its nucleus: its centroid is inside the label's bounding box
    xs, ys = np.array(ring)[:, 0], np.array(ring)[:, 1]
    rr, cc = np.nonzero(lab == int(f["id"]))
    assert rr.min() - 1 <= ys.mean() <= rr.max() + 1 and cc.min() - 1 <= xs.mean() <= cc.max() + 1


def test_csv_keeps_every_nucleus(tmp_path, tile):
    import csv

    rgb, lab = tile
    p = export_labels(tmp_path / "n.csv", lab, rgb)
    rows = list(csv.DictReader(p.open()))
    assert tuple(rows[0]) == MEASUREMENT_FIELDS
    assert len(rows) == lab.max()
    m = measurements(lab, rgb)
    assert m[0]["area"] == int((lab == m[0]["id"]).sum())
    assert m[0]["mean_hematoxylin"] > 0


def test_reader_png_and_tiff(tmp_path, tile):
    import imageio.v3 as iio
    import tifffile

    rgb, _ = tile
    iio.imwrite(tmp_path / "a.png", rgb)
    tifffile.imwrite(tmp_path / "b.tif", rgb)
    tifffile.imwrite(tmp_path / "c.tif", np.stack([rgb, rgb[::-1]]))  # multi-page: first page
    for name in ("a.png", "b.tif"):
        (data, meta, kind), = get_reader(str(tmp_path / name))(str(tmp_path / name))
        assert kind == "image" and meta["rgb"] and np.array_equal(np.asarray(data), rgb)
    assert get_reader(str(tmp_path / "x.txt")) is None


def test_reader_pyramidal_tiff_is_lazy_and_multiscale(tmp_path, tile):
    import tifffile

    rgb, _ = tile
    big = np.tile(rgb, (4, 4, 1))  # 640 x 640
    p = tmp_path / "pyr.tif"
    with tifffile.TiffWriter(p) as tw:
        tw.write(big, subifds=1, tile=(128, 128), photometric="rgb")
        tw.write(big[::2, ::2], subfiletype=1, tile=(128, 128), photometric="rgb")
    (data, meta, kind), = get_reader(str(p))(str(p))
    assert meta["multiscale"] and meta["rgb"] and len(data) == 2
    assert type(data[0]).__module__.startswith("dask")  # not read yet
    assert data[0].shape == (640, 640, 3) and data[1].shape == (320, 320, 3)
    assert np.array_equal(np.asarray(data[0][:128, :128]), big[:128, :128])


def test_reader_large_flat_tiff_gets_a_lazy_pyramid(tmp_path, monkeypatch):
    import tifffile

    from napari_prunuclei.gui import reader as _reader

    monkeypatch.setattr(_reader, "LAZY_PIXELS", 100 * 100)
    monkeypatch.setattr(_reader, "PYRAMID_SMALLEST", 256)
    rgb = np.random.default_rng(0).integers(0, 255, (600, 600, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "flat.tif", rgb, tile=(128, 128))
    data, meta, kind = get_reader(str(tmp_path / "flat.tif"))(str(tmp_path / "flat.tif"))[0]
    assert meta["multiscale"] and meta["rgb"] and kind == "image"
    assert [d.shape[:2] for d in data] == [(600, 600), (300, 300), (150, 150)]
    assert type(data[0]).__name__ == "Array"  # dask: nothing read yet
    np.testing.assert_array_equal(np.asarray(data[2][:10, :10]), rgb[::4, ::4][:10, :10])


def test_reader_raises_only_image_error(tmp_path, tile):
    """A corrupt or hostile file gives an ImageError naming it, never a decoder's own exception."""
    import struct

    import tifffile

    from napari_prunuclei.io.guards import ImageError

    rgb, _ = tile
    p = tmp_path / "t.tif"
    tifffile.imwrite(p, rgb, tile=(64, 64), compression="zlib", photometric="rgb")
    data = bytearray(p.read_bytes())
    bad = tmp_path / "bad.tif"
    bad.write_bytes(bytes(data[: len(data) // 2]))  # truncated: tiles missing
    with pytest.raises(ImageError, match="bad.tif"):
        get_reader(str(bad))(str(bad))
    struct.pack_into("<I", data, 4, 0)  # no image directory
    bad.write_bytes(bytes(data))
    with pytest.raises(ImageError, match="bad.tif"):
        get_reader(str(bad))(str(bad))
    with pytest.raises(ImageError, match="not found"):
        get_reader(str(tmp_path / "none.tif"))(str(tmp_path / "none.tif"))


def test_label_images_open_as_labels_layers(tmp_path, tile):
    """So that a ground-truth file can be chosen in the widget as opened."""
    import tifffile

    from napari_prunuclei.io.labels import write_labels as write_label_file

    rgb, lab = tile
    tifffile.imwrite(tmp_path / "gt.tif", lab.astype(np.uint16))  # MoNuSeg's layout
    write_label_file(tmp_path / "ids.png", lab)  # 16-bit PNG, as exported
    tifffile.imwrite(tmp_path / "he.tif", rgb)
    for name, kind in (("gt.tif", "labels"), ("ids.png", "labels"), ("he.tif", "image")):
        ((data, meta, layer_type),) = get_reader(str(tmp_path / name))(str(tmp_path / name))
        assert layer_type == kind, name
        if kind == "labels":
            assert np.array_equal(np.asarray(data), lab) and "rgb" not in meta


@pytest.mark.parametrize("kind, want", [("cm", 0.25), ("dpi72", None), ("svs", 0.252), ("ome", 0.5)])
def test_pixel_size_from_tiff_metadata(tmp_path, kind, want):
    """Resolution tags in cm, an SVS description's MPP and OME's PhysicalSizeX give µm per pixel (the
    layer's metadata carries it to the widget); a writer's 72 dpi default does not."""
    import tifffile

    from napari_prunuclei.gui.reader import read_he
    from napari_prunuclei.io.pixel_size import tiff_pixel_size

    a = np.zeros((64, 64, 3), np.uint8)
    p = tmp_path / ("x.ome.tif" if kind == "ome" else "x.tif")
    if kind == "cm":
        tifffile.imwrite(p, a, resolution=(1e4 / 0.25, 1e4 / 0.25), resolutionunit="CENTIMETER")
    elif kind == "dpi72":
        tifffile.imwrite(p, a, resolution=(72, 72))
    elif kind == "svs":
        tifffile.imwrite(p, a, description="Aperio Image Library |AppMag = 40|MPP = 0.2520")
    else:
        tifffile.imwrite(p, a, metadata={"PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5, "axes": "YXS"}, ome=True)
    assert tiff_pixel_size(p) == (pytest.approx(want) if want else None)
    (_, meta, kind_), = read_he(p)
    assert kind_ == "image"
    assert meta.get("metadata", {}).get("pixel_size_um") == (pytest.approx(want) if want else None)


def test_a_channel_image_with_a_pixel_size_opens(tmp_path):
    """Hostile pass: a 2-channel TIFF with resolution tags got a 2-axis scale for a 3-axis layer (napari refused)."""
    import numpy as np
    import tifffile

    from napari_prunuclei.gui.reader import read_he

    f = tmp_path / "two.tif"
    tifffile.imwrite(f, np.zeros((64, 64, 2), np.uint8), photometric="minisblack", planarconfig="contig",
                     resolution=(40000.0, 40000.0), resolutionunit=3)
    (data, meta, kind), = read_he(str(f))
    assert "scale" not in meta and "units" not in meta
