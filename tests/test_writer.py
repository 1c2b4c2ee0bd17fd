import numpy as np

from napari_prunuclei.gui.writer import write_labels
from napari_prunuclei.io.labels import read_labels
from napari_prunuclei.nuclei.synthetic import synthetic_tile


def test_a_name_without_extension_is_written_as_tiff(tmp_path):
    """napari's File > Save Selected Layers offers the layer name without an extension."""
    _, lab = synthetic_tile(128, seed=3)
    (out,) = write_labels(str(tmp_path / "nuclei"), lab, {})
    assert out == str(tmp_path / "nuclei.tif")
    assert np.array_equal(read_labels(out), lab)


def test_lazy_labels_are_written_block_by_block(tmp_path):
    import zarr

    _, lab = synthetic_tile(256, seed=4)
    z = zarr.open_array(str(tmp_path / "l.zarr"), mode="w", shape=lab.shape, chunks=(64, 64), dtype="int32")
    z[:] = lab
    (out,) = write_labels(str(tmp_path / "n.csv"), z, {})
    assert sum(1 for _ in open(out)) == 1 + len(np.unique(lab[lab > 0]))


def test_a_name_without_extension_never_replaces_the_tiff_of_that_name(tmp_path):
    """Hostile pass: 'seg' (the save dialog asked about 'seg') replaced the user's seg.tif."""
    import pytest

    (tmp_path / "seg.tif").write_bytes(b"the user's own image")
    with pytest.raises(FileExistsError, match="seg.tif exists"):
        write_labels(str(tmp_path / "seg"), np.ones((8, 8), np.int32), {})
    assert (tmp_path / "seg.tif").read_bytes() == b"the user's own image"
