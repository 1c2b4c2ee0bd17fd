"""Pixel sizes read from files: only a clean, square size counts; anything else is unknown (hostile pass)."""

import numpy as np
import pytest
import tifffile

from napari_prunuclei.io.pixel_size import read_pixel_size

RGB = np.zeros((32, 32, 3), np.uint8)


@pytest.mark.parametrize("kw, expected", [
    ({"description": "Aperio Image Library v10\n32x32 |AppMag = 40|MPP = 2.5e-1"}, 0.25),  # read as 2.5 before
    ({"description": "Aperio Image Library v10\n32x32 |AppMag = 40|MPP = 0.2527|x"}, 0.2527),
    ({"description": "Aperio Image Library v10\n32x32 |MPP = abc"}, None),
    ({"resolution": (40000.0, 20000.0), "resolutionunit": 3}, None),  # anisotropic: X was taken alone
    ({"resolution": (40000.0, 40000.0), "resolutionunit": 3}, 0.25),
    ({"resolution": (72.0, 72.0), "resolutionunit": 2}, None),  # a writer's default dpi, not a scanner's
    ({"resolution": (72 / 2.54, 72 / 2.54), "resolutionunit": 3}, None),  # the same in centimetres
    ({"resolution": (1e4 / 16, 1e4 / 16), "resolutionunit": 3}, 16.0),  # our tissue mask (was ignored)
    ({"resolution": (25400 / 16, 25400 / 16), "resolutionunit": 2}, None),  # 16 µm in inches: no scanner's
    ({"resolution": (300.0, 300.0), "resolutionunit": 3}, None),  # a dpi number put in centimetres (hostile)
    ({"description": "Aperio Image |OriginalMPP = 5|MPP = 0.25|"}, 0.25),  # the prefixed key was read
    ({"description": "Aperio Image |MPP = " + "1" * 20000 + "e|"}, None),  # took 20 s to backtrack (hostile)
])
def test_tiff_tags(tmp_path, kw, expected):
    f = tmp_path / "x.tif"
    tifffile.imwrite(f, RGB, photometric="rgb", **kw)
    assert read_pixel_size(f) == pytest.approx(expected) if expected else read_pixel_size(f) is None


@pytest.mark.parametrize("meta, expected", [
    ({"PhysicalSizeX": 0.5, "PhysicalSizeXUnit": "pixel"}, None),  # an unknown unit was taken as µm
    ({"PhysicalSizeX": 0.25, "PhysicalSizeY": 1.0}, None),
    ({"PhysicalSizeX": 250, "PhysicalSizeXUnit": "nm", "PhysicalSizeY": 250, "PhysicalSizeYUnit": "nm"}, 0.25),
    ({"PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}, 0.5),
    ({"PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5, "PhysicalSizeXUnit": "\u03bcm", "PhysicalSizeYUnit": "\u03bcm"},
     0.5),  # the Greek mu, not the micro sign
])
def test_ome(tmp_path, meta, expected):
    f = tmp_path / "x.ome.tif"
    tifffile.imwrite(f, RGB, photometric="rgb", metadata=meta)
    assert read_pixel_size(f) == pytest.approx(expected) if expected else read_pixel_size(f) is None


def test_the_pixel_size_is_the_opened_series_not_a_thumbnail_stored_first(tmp_path):
    """Hostile pass: page 0 a 64² thumbnail at 1 µm, then the 256² image at 0.25 µm: 1.0 was read, the image
    resampled 4 times and its outputs tagged 1 µm."""
    import numpy as np
    import tifffile

    with tifffile.TiffWriter(tmp_path / "t.tif") as tw:
        tw.write(np.zeros((64, 64, 3), np.uint8), photometric="rgb", resolution=(1e4, 1e4), resolutionunit="CENTIMETER")
        tw.write(np.zeros((256, 256, 3), np.uint8), photometric="rgb", resolution=(4e4, 4e4),
                 resolutionunit="CENTIMETER")
    assert read_pixel_size(tmp_path / "t.tif") == pytest.approx(0.25)
    with tifffile.TiffWriter(tmp_path / "o.ome.tif", ome=True) as tw:  # two OME Images: the larger one counts
        tw.write(np.zeros((64, 64, 3), np.uint8), photometric="rgb", metadata={"PhysicalSizeX": 1.0,
                                                                              "PhysicalSizeY": 1.0})
        tw.write(np.zeros((256, 256, 3), np.uint8), photometric="rgb", metadata={"PhysicalSizeX": 0.25,
                                                                                "PhysicalSizeY": 0.25})
    assert read_pixel_size(tmp_path / "o.ome.tif") == pytest.approx(0.25)


def test_an_ome_size_outside_the_images_pixels_element_is_not_the_pixel_size(tmp_path):
    """Hostile pass: a PhysicalSizeX="7" in a StructuredAnnotation (the image's Pixels has none) was read."""
    f = tmp_path / "x.ome.tif"
    tifffile.imwrite(f, RGB, photometric="rgb", metadata=None, description=(
        '<?xml version="1.0"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
        '<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint8" SizeX="32" SizeY="32" '
        'SizeC="3" SizeZ="1" SizeT="1"><Channel ID="Channel:0:0" SamplesPerPixel="3"/><TiffData/></Pixels></Image>'
        '<StructuredAnnotations><XMLAnnotation ID="Annotation:0"><Value><Other PhysicalSizeX="7"/></Value>'
        '</XMLAnnotation></StructuredAnnotations></OME>'))
    assert read_pixel_size(f) is None
