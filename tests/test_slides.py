"""Slide formats tifffile cannot read go through OpenSlide, an optional reader, or say what to install."""

import sys

import numpy as np
import pytest

from napari_prunuclei.io.guards import ImageError
from napari_prunuclei.io.images import open_image
from napari_prunuclei.io.slides import OpenSlideImage


def test_a_missing_optional_reader_is_named_with_the_extra_to_install(tmp_path, monkeypatch):
    mrxs = tmp_path / "slide.mrxs"
    mrxs.write_bytes(b"not really a slide")
    monkeypatch.setitem(sys.modules, "openslide", None)  # as if the extra were not installed
    with pytest.raises(ImageError, match=r"slide\.mrxs.*napari-prunuclei\[slides\]"):
        open_image(mrxs)


def test_vsi_and_isyntax_are_refused_by_name(tmp_path):
    with pytest.raises(ImageError, match="not supported.*OME-TIFF"):
        open_image(tmp_path / "x.vsi")


def test_a_corrupt_slide_is_refused_by_name(tmp_path):
    pytest.importorskip("openslide")
    bad = tmp_path / "bad.mrxs"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(ImageError, match="bad.mrxs"):
        open_image(bad)


def test_openslide_reads_the_regions_tifffile_reads(tmp_path):
    """The lazy OpenSlide array against tifffile on the shipped CMU-1 region's source (an SVS both read)."""
    pytest.importorskip("openslide")
    from napari_prunuclei.io.samples import sample_path

    src = sample_path("cmu1")  # a JPEG-tiled TIFF with resolution tags: OpenSlide reads it as generic TIFF
    slide = OpenSlideImage(src)
    ref = np.asarray(open_image(src))
    assert slide.shape == ref.shape and slide.dtype == np.uint8
    region = slide[100:300, 200:456]
    assert region.shape == (200, 256, 3)
    assert np.abs(region.astype(int) - ref[100:300, 200:456]).mean() < 2  # two JPEG decoders
    assert np.abs(slide[::4, ::4].astype(int) - ref[::4, ::4]).mean() < 2
