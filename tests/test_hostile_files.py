"""Hostile and corrupt files: the readers refuse them with ImageError, quickly and in little memory.

Everything here is small, seeded and CPU-only. Crafted files are tiny valid images whose headers are
patched to declare absurd sizes; the fuzz flips bytes in, and truncates, small valid PNG, JPEG and
TIFF files and feeds them to every reader entry point.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from napari_prunuclei.gui import reader as _reader
from napari_prunuclei.gui.reader import read_he
from napari_prunuclei.io.guards import ImageError
from napari_prunuclei.io.images import open_image, read_image
from napari_prunuclei.io.labels import read_labels, write_labels

# --------------------------------------------------------------------------------------------------
# making files


def _rgb(h: int = 128, w: int = 128, seed: int = 0) -> np.ndarray:
    """A smooth, slightly noisy RGB image (compresses like a real one, not like noise or a flat fill)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([np.sin(xx / 9.0 + k) * np.cos(yy / 13.0 - k) for k in range(3)], axis=-1)
    return np.clip(128 + 90 * base + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)


def _labels(h: int = 70, w: int = 70) -> np.ndarray:
    lab = np.zeros((h, w), np.int32)
    lab[5:15, 5:15] = 1
    lab[20:40, 30:50] = 300
    return lab


def _tiff_bytes(data: np.ndarray, **kwargs) -> bytes:
    import tifffile

    b = io.BytesIO()
    tifffile.imwrite(b, data, **kwargs)
    return b.getvalue()


def _png_bytes(data: np.ndarray) -> bytes:
    from PIL import Image

    b = io.BytesIO()
    Image.fromarray(data).save(b, format="PNG")
    return b.getvalue()


def _pyramid_bytes(rgb: np.ndarray) -> bytes:
    import tifffile

    b = io.BytesIO()
    with tifffile.TiffWriter(b) as tw:
        tw.write(rgb, subifds=1, tile=(64, 64), photometric="rgb", compression="zlib")
        tw.write(rgb[::2, ::2], subfiletype=1, tile=(64, 64), photometric="rgb", compression="zlib")
    return b.getvalue()


def seed_files() -> dict[str, bytes]:
    """Small valid files of every kind the readers take, by file name."""
    from PIL import Image

    rgb = _rgb()
    lab = _labels()
    jpg = io.BytesIO()
    Image.fromarray(rgb).save(jpg, format="JPEG", quality=90)
    return {
        "rgb.png": _png_bytes(rgb),
        "labels16.png": _png_bytes(lab.astype(np.uint16)),
        "rgb.jpg": jpg.getvalue(),
        "strips.tif": _tiff_bytes(rgb, photometric="rgb", rowsperstrip=16),
        "zlib_tiles.tif": _tiff_bytes(rgb, photometric="rgb", tile=(64, 64), compression="zlib"),
        "jpeg_tiles.tif": _tiff_bytes(rgb, photometric="rgb", tile=(64, 64), compression="jpeg"),
        "lzw_strips.tif": _tiff_bytes(rgb, photometric="rgb", rowsperstrip=32, compression="lzw"),
        "pyramid.tif": _pyramid_bytes(rgb),
        "labels.tif": _tiff_bytes(lab.astype(np.uint16), compression="zlib"),
    }


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One random corruption: bytes flipped (mostly in the header and directory), a 32-bit field
    overwritten with an extreme value, or the file cut short."""
    b = bytearray(data)
    kind = rng.integers(0, 4)
    head = min(len(b), 512)
    if kind == 0:  # a few random bytes anywhere
        for _ in range(rng.integers(1, 9)):
            b[rng.integers(0, len(b))] = rng.integers(0, 256)
    elif kind == 1:  # a few random bytes in the header / first directory
        for _ in range(rng.integers(1, 5)):
            b[rng.integers(0, head)] = rng.integers(0, 256)
    elif kind == 2:  # an extreme 32-bit value where a size, count or offset may lie
        i = int(rng.integers(0, max(head - 4, 1)))
        v = int(rng.choice([0, 1, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, rng.integers(0, 2**32)]))
        b[i : i + 4] = struct.pack(rng.choice(["<I", ">I"]), v)
    else:  # truncated
        del b[rng.integers(0, len(b)) :]
    return bytes(b)


def _first_chunk(data) -> None:
    """Read the first and the last chunk of what a reader returned (a lazy array decodes those tiles)."""
    first = data[0] if isinstance(data, list) else data
    np.asarray(first[:64, :64])
    np.asarray(first[-64:, -64:])


def _call_read_he(p: Path) -> None:
    for data, _meta, _kind in read_he(str(p)):
        _first_chunk(data)


def _call_open_image(p: Path) -> None:
    _first_chunk(open_image(p))


ENTRY_POINTS = {
    "read_he": _call_read_he,
    "read_image": read_image,
    "open_image": _call_open_image,
    "read_labels": read_labels,
}


def fuzz(folder: Path, n_per_seed: int, seed: int = 0) -> dict:
    """Feed mutated seed files to every entry point: returns counts of what each raised."""
    rng = np.random.default_rng(seed)
    found: dict[str, int] = {}
    examples: list[str] = []
    unnamed: list[str] = []
    messages: list[str] = []
    n = 0
    for name, data in seed_files().items():
        for i in range(n_per_seed):
            p = folder / f"{i:03d}_{name}"
            p.write_bytes(mutate(data, rng))
            for entry, call in ENTRY_POINTS.items():
                n += 1
                try:
                    call(p)
                except ImageError as e:
                    messages.append(str(e))
                    if str(p) not in str(e):
                        unnamed.append(f"{entry}: {e}")
                except Exception as e:  # noqa: BLE001 - what the fuzz is looking for
                    found[type(e).__name__] = found.get(type(e).__name__, 0) + 1
                    examples.append(f"{entry} {p.name}: {type(e).__name__}: {e}"[:300])
            p.unlink()
    return {"calls": n, "raised": found, "examples": examples, "unnamed": unnamed, "messages": messages}


# --------------------------------------------------------------------------------------------------
# crafted files: tiny, valid but for a header declaring an absurd size


def patch_ifd(data: bytes, tags: dict[int, int]) -> bytes:
    """Set tags of the first IFD of a little-endian classic TIFF to one LONG value each."""
    b = bytearray(data)
    assert b[:4] == b"II*\x00"
    ifd = struct.unpack_from("<I", b, 4)[0]
    seen = set()
    for k in range(struct.unpack_from("<H", b, ifd)[0]):
        entry = ifd + 2 + 12 * k
        tag = struct.unpack_from("<H", b, entry)[0]
        if tag in tags:
            struct.pack_into("<HHII", b, entry, tag, 4, 1, tags[tag])
            seen.add(tag)
    assert seen == set(tags), f"tags {set(tags) - seen} not in the IFD"
    return bytes(b)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png16(a: np.ndarray) -> bytes:
    """A 16-bit PNG (gray, RGB or RGBA by the last axis) written by hand: Pillow cannot write 16-bit colour."""
    a = np.asarray(a, np.uint16)
    colour = {1: 0, 3: 2, 4: 6}[1 if a.ndim == 2 else a.shape[-1]]
    h, w = a.shape[:2]
    rows = a.reshape(h, -1).astype(">u2").tobytes()
    raw = b"".join(b"\x00" + rows[i * len(rows) // h : (i + 1) * len(rows) // h] for i in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(raw))
            + _png_chunk(b"IEND", b""))


def patch_png_size(data: bytes, w: int, h: int) -> bytes:
    """Declare another size in a PNG's IHDR (its CRC recomputed, so the chunk is valid)."""
    b = bytearray(data)
    struct.pack_into(">II", b, 16, w, h)
    struct.pack_into(">I", b, 29, zlib.crc32(bytes(b[12:29])))
    return bytes(b)


def patch_jpeg_size(data: bytes, w: int, h: int) -> bytes:
    """Declare another size in a JPEG's frame header (SOF0)."""
    b = bytearray(data)
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", b, sof + 5, h, w)
    return bytes(b)


def patch_jpeg_tiles(data: bytes, w: int, h: int, which=None) -> bytes:
    """Make the JPEG (or JPEG 2000) tiles ``which`` (all by default) of a TIFF declare ``w x h`` px."""
    import tifffile

    with tifffile.TiffFile(io.BytesIO(data)) as tf:
        offsets, counts = tf.pages[0].dataoffsets, tf.pages[0].databytecounts
    b = bytearray(data)
    for i in range(len(offsets)) if which is None else which:
        tile = bytes(b[offsets[i] : offsets[i] + counts[i]])
        if tile.startswith(b"\xff\x4f\xff\x51"):  # JPEG 2000 codestream: SIZ's Xsiz, Ysiz
            struct.pack_into(">II", b, offsets[i] + 8, w, h)
        else:  # JPEG: SOF0's height, width
            sof = tile.find(b"\xff\xc0")
            assert sof > 0
            struct.pack_into(">HH", b, offsets[i] + sof + 5, h, w)
    return bytes(b)


def crafted_files(folder: Path) -> dict[str, Path]:
    """Tiny files declaring absurd sizes, as users and a fuzzer found them."""
    rgb8 = np.zeros((8, 8, 3), np.uint8)
    rgb = _rgb()
    files = {
        # the 186-byte report: 3,000,000,000 x 5 px
        "absurd_side.tif": patch_ifd(_tiff_bytes(rgb8, photometric="rgb", metadata=None),
                                     {256: 5, 257: 3_000_000_000}),
        # 200,000 x 200,000 px (120 GB) in 16-row zlib strips, in a file of a few KB
        "huge_strips.tif": patch_ifd(_tiff_bytes(rgb, photometric="rgb", metadata=None, rowsperstrip=16,
                                                 compression="zlib"), {256: 200_000, 257: 200_000}),
        # sane size, tiles declaring 65,536 x 65,536 px (12 GiB each)
        "huge_tiles.tif": patch_ifd(_tiff_bytes(rgb, photometric="rgb", metadata=None, tile=(64, 64),
                                                compression="zlib"), {322: 65536, 323: 65536}),
        # a strip claiming 4 GiB of data in a small file
        "huge_bytecount.tif": patch_ifd(_tiff_bytes(rgb, photometric="rgb", metadata=None),
                                        {279: 0xFFFFFFF0}),
        # a JPEG tile whose own header declares 60,000 x 60,000 px (10 GiB decoded)
        "jpeg_tile_bomb.tif": patch_jpeg_tiles(_tiff_bytes(rgb, photometric="rgb", metadata=None, tile=(64, 64),
                                                           compression="jpeg"), 60_000, 60_000, which=[0]),
        # PNGs declaring 100,000 x 100,000 px (30 GB) and 5,000,000 x 1 px
        "huge.png": patch_png_size(_png_bytes(rgb), 100_000, 100_000),
        "huge_labels.png": patch_png_size(_png_bytes(_labels().astype(np.uint16)), 100_000, 100_000),
        "absurd_side.png": patch_png_size(_png_bytes(rgb), 5_000_000, 1),
        # a JPEG declaring 60,000 x 60,000 px
        "huge.jpg": patch_jpeg_size(seed_files()["rgb.jpg"], 60_000, 60_000),
        # zero width
        "empty.tif": patch_ifd(_tiff_bytes(rgb, photometric="rgb", metadata=None), {256: 0}),
    }
    out = {}
    for name, data in files.items():
        out[name] = folder / name
        out[name].write_bytes(data)
    return out


def sparse_tiff(p: Path, side: int = 60_000) -> Path:
    """A legit ``side`` x ``side`` RGB TIFF of 512 px zlib tiles, all but the first empty: a file of about
    100 KB declaring 10 GiB, as a whole-slide image with large empty regions may."""
    import tifffile

    n = ((side + 511) // 512) ** 2

    def tiles():
        yield np.zeros((512, 512, 3), np.uint8)
        yield from (None for _ in range(n - 1))  # empty tile: no bytes stored

    tifffile.imwrite(p, tiles(), shape=(side, side, 3), dtype=np.uint8, photometric="rgb", tile=(512, 512),
                     compression="zlib")
    return p


#: what the readers say when they refuse a file by its header, before decoding
HEADER_REFUSAL = r"no side may exceed|declares|lists only|stored in .* tiles or strips|must be a 2-D|is empty"


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_crafted_files_are_refused_quickly_by_their_header(tmp_path, entry):
    for name, p in crafted_files(tmp_path).items():
        with pytest.raises(ImageError) as e:
            ENTRY_POINTS[entry](p)
        assert str(p) in str(e.value), f"{name}: {e.value}"
        if name != "empty.tif":  # tifffile refuses some zero sizes itself
            assert e.match(HEADER_REFUSAL), f"{name}: {e.value}"
        assert "memory" not in str(e.value)


_CHILD = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), int(sys.argv[1])))
sys.path.insert(0, sys.argv[2])
import numpy as np
import test_hostile_files as T
T.ENTRY_POINTS["read_he"](T.Path(sys.argv[3]))  # imports (dask, zarr...) done: the baseline
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = {}
for p in sys.argv[4:]:
    for entry, call in T.ENTRY_POINTS.items():
        try:
            call(T.Path(p))
            out[f"{entry} {p}"] = "ok"
        except T.ImageError as e:
            out[f"{entry} {p}"] = "ImageError: " + str(e)
        except BaseException as e:
            out[f"{entry} {p}"] = f"{type(e).__name__}: {e}"
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(json.dumps({"grown_mb": grown, "out": out}))
"""


def test_crafted_files_stay_within_little_memory(tmp_path):
    """In a child limited to 2.5 GB of address space: every crafted file (and a legit sparse
    60,000 x 60,000 px TIFF, opened lazily) costs under 500 MB of peak memory, and the refusals come from
    the headers, not from running out of memory."""
    files = crafted_files(tmp_path)
    sparse = tmp_path / "sparse.tif"
    sparse_tiff(sparse)
    ok = tmp_path / "ok.tif"
    ok.write_bytes(_tiff_bytes(_rgb(), photometric="rgb", tile=(64, 64), compression="zlib"))
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", _CHILD, str(int(2.5 * 2**30)), str(Path(__file__).parent), str(ok),
                        *map(str, [*files.values(), sparse])], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    for key, what in res["out"].items():
        entry, p = key.split(" ", 1)
        if p == str(sparse) and entry in ("read_he", "open_image"):
            assert what == "ok", key  # huge declared size, sane tiles: fine lazily
        else:
            assert what.startswith("ImageError: "), f"{key}: {what}"
            assert p in what and "memory" not in what, f"{key}: {what}"
    print(f"peak memory grew by {res['grown_mb']:.0f} MB")
    assert res["grown_mb"] < 500, res


def test_sparse_huge_tiff_opens_lazily_but_is_refused_whole(tmp_path):
    p = sparse_tiff(tmp_path / "sparse.tif")
    arr = open_image(p)
    assert arr.shape == (60_000, 60_000, 3) and not np.asarray(arr[:10, :10]).any()
    (data, meta, _), = read_he(str(p))
    assert meta["multiscale"] and data[0].shape == (60_000, 60_000, 3)
    with pytest.raises(ImageError, match="declares .* whole read|file holds only"):
        read_image(p)


@pytest.mark.parametrize("compression", ["jpeg", "jpeg2000"])
def test_jpeg_tile_declaring_a_huge_size_is_refused_also_later(tmp_path, compression):
    """A JPEG tile's own header may declare 65,535 x 65,535 px (JPEG 2000: far more): refused before
    decoding, for the first tile when the file is opened, for a later one when a lazy read reaches it."""
    rgb = _rgb()
    data = _tiff_bytes(rgb, photometric="rgb", tile=(64, 64), compression=compression)
    late = tmp_path / "late.tif"
    late.write_bytes(patch_jpeg_tiles(data, 60_000, 60_000, which=[3]))  # the last of 2 x 2 tiles
    with pytest.raises(ImageError, match="tile 3 declares 60000x60000 px"):
        read_image(late)
    arr = open_image(late)  # the first tile is fine
    assert np.abs(np.asarray(arr[:64, :64], dtype=int) - rgb[:64, :64]).mean() < 6
    with pytest.raises(ImageError, match=f"{late}.*tile 3 declares"):
        np.asarray(arr[64:, 64:])


def test_16bit_rgb_png_is_refused_not_cut_to_8_bits(tmp_path):
    rng = np.random.default_rng(0)
    twelve_bit = rng.integers(0, 4096, (80, 80, 3))
    for name, a in (("rgb16.png", twelve_bit), ("rgba16.png", np.dstack([twelve_bit, twelve_bit[..., :1]]))):
        p = tmp_path / name
        p.write_bytes(png16(a))
        with pytest.raises(ImageError, match=r"16-bit RGBA? PNG.*convert it to 8 bits") as e:
            read_image(p)
        assert str(p) in str(e.value)
        with pytest.raises(ImageError, match="16-bit"):
            read_he(str(p))
    gray = tmp_path / "gray16.png"
    gray.write_bytes(png16(twelve_bit[..., 0]))
    with pytest.raises(ImageError, match="grayscale"):
        read_image(gray)
    # labels are 16-bit grayscale PNGs by design: still read, all 16 bits of them
    lab = np.zeros((70, 70), np.int32)
    lab[10:20, 10:20] = 40_000
    lab[30:40, 30:40] = 257
    assert np.array_equal(read_labels(write_labels(tmp_path / "l.png", lab)), lab)
    (tmp_path / "l2.png").write_bytes(png16(lab))
    assert np.array_equal(read_labels(tmp_path / "l2.png"), lab)
    # 8-bit RGB PNGs are unaffected
    (tmp_path / "rgb8.png").write_bytes(_png_bytes(_rgb()))
    assert np.array_equal(read_image(tmp_path / "rgb8.png"), _rgb())


@pytest.mark.parametrize("compression", ["jpeg", "lzw"])
@pytest.mark.parametrize("layout", ["tiles", "strips", "pyramid"])
def test_jpeg_and_lzw_tiffs_read(tmp_path, monkeypatch, compression, layout):
    """JPEG- and LZW-compressed TIFFs (SVS are JPEG) need imagecodecs: read whole, lazily, and in napari."""
    import tifffile

    rgb = _rgb(256, 320)
    p = tmp_path / f"{layout}.tif"
    if layout == "pyramid":
        with tifffile.TiffWriter(p) as tw:
            tw.write(rgb, subifds=1, tile=(64, 64), photometric="rgb", compression=compression)
            tw.write(rgb[::2, ::2], subfiletype=1, tile=(64, 64), photometric="rgb", compression=compression)
    else:
        kw = {"tile": (64, 64)} if layout == "tiles" else {"rowsperstrip": 32}
        tifffile.imwrite(p, rgb, photometric="rgb", compression=compression, **kw)
    tol = 6 if compression == "jpeg" else 0  # mean absolute error of a lossy codec (the image is noisy)

    def close(a, b):
        return np.abs(np.asarray(a, dtype=int) - b).mean() <= tol

    assert close(read_image(p), rgb)
    arr = open_image(p)
    assert arr.shape == rgb.shape and close(arr[100:200, 50:250], rgb[100:200, 50:250])
    (data, meta, _), = read_he(str(p))
    assert meta["rgb"]
    assert close(data[0] if isinstance(data, list) else data, rgb)
    monkeypatch.setattr(_reader, "LAZY_PIXELS", 100 * 100)  # the lazy path of the napari reader
    monkeypatch.setattr(_reader, "PYRAMID_SMALLEST", 128)
    (data, meta, _), = read_he(str(p))
    assert meta["multiscale"] and type(data[0]).__name__ == "Array"
    assert close(data[0][:128, :128], rgb[:128, :128])


@pytest.mark.parametrize("case", ["empty_file", "header_only", "ifd_beyond_end", "truncated", "no_ifd", "text"])
def test_broken_tiffs_name_the_file(tmp_path, case):
    good = _tiff_bytes(_rgb(), photometric="rgb", tile=(64, 64), compression="zlib")
    data = {
        "empty_file": b"",
        "header_only": good[:8],
        "ifd_beyond_end": good[:4] + struct.pack("<I", 10**9) + good[8:],
        "truncated": good[: len(good) // 2],
        "no_ifd": good[:4] + struct.pack("<I", 0) + good[8:],
        "text": b"not a tiff at all",
    }[case]
    p = tmp_path / f"{case}.tif"
    p.write_bytes(data)
    for entry, call in ENTRY_POINTS.items():
        with pytest.raises(ImageError) as e:
            call(p)
        assert str(p) in str(e.value), f"{entry}: {e.value}"


def test_missing_file_is_image_error(tmp_path):
    for entry, call in ENTRY_POINTS.items():
        with pytest.raises(ImageError, match="not found"):
            call(tmp_path / "none.tif")
        assert entry


def test_large_uncompressed_single_strip_is_memory_mapped(tmp_path, monkeypatch):
    """An uncompressed TIFF written as one strip (tifffile's default) is one huge chunk: lazily, it is
    memory-mapped rather than refused or decoded whole."""
    import tifffile

    from napari_prunuclei.io import guards as pio

    rgb = _rgb(300, 400)
    p = tmp_path / "flat.tif"
    tifffile.imwrite(p, rgb, photometric="rgb")
    monkeypatch.setattr(pio, "MAX_CHUNK_BYTES", 50_000)  # as if the strip were over 512 MiB
    monkeypatch.setattr(_reader, "LAZY_PIXELS", 100 * 100)
    monkeypatch.setattr(_reader, "PYRAMID_SMALLEST", 128)
    arr = open_image(p)
    assert isinstance(arr, np.memmap) and np.array_equal(arr[10:20, 30:40], rgb[10:20, 30:40])
    (data, meta, _), = read_he(str(p))
    assert meta["multiscale"] and type(data[0]).__name__ == "Array"
    assert np.array_equal(np.asarray(data[1]), rgb[::2, ::2])
    # the same, compressed: refused, as any read would decode the whole strip
    tifffile.imwrite(p, rgb, photometric="rgb", compression="zlib", rowsperstrip=300)
    with pytest.raises(ImageError, match="at most .* allowed"):
        open_image(p)


def test_valid_seed_files_read(tmp_path):
    """The fuzz starts from files every reader takes."""
    for name, data in seed_files().items():
        p = tmp_path / name
        p.write_bytes(data)
        if "labels" in name:
            assert read_labels(p).shape == (70, 70)
        else:
            assert read_image(p).shape == (128, 128, 3)
            _call_open_image(p)
        if "labels" not in name or name.endswith(".tif"):  # the reader shows any TIFF; PNGs must be RGB
            _call_read_he(p)


@pytest.mark.parametrize("lazy", [False, True])
def test_fuzzed_files_raise_only_image_error_naming_the_file(tmp_path, monkeypatch, lazy):
    """A few hundred seeded corruptions of small valid files: every entry point raises nothing but an
    ImageError naming the file. ``lazy``: the napari reader takes its lazy (dask) path for them."""
    if lazy:
        monkeypatch.setattr(_reader, "LAZY_PIXELS", 100 * 100)
    res = fuzz(tmp_path, n_per_seed=35, seed=int(lazy))
    assert res["calls"] == 35 * len(seed_files()) * len(ENTRY_POINTS)
    assert not res["raised"], res["examples"][:20]
    assert not res["unnamed"], res["unnamed"][:20]


_FUZZ_CHILD = """
import json, resource, sys
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), int(sys.argv[1])))
sys.path.insert(0, sys.argv[2])
import test_hostile_files as T
print(json.dumps(T.fuzz(Path(sys.argv[3]), n_per_seed=int(sys.argv[4]), seed=7)))
"""


@pytest.mark.slow
def test_a_thousand_fuzzed_files_under_a_memory_cap(tmp_path):
    """At least 1,000 corrupted PNG/TIFF files through the four entry points (the napari reader, the
    image opener of segment, read_image, and read_labels of score) in a child limited to 3 GB of address
    space: every outcome is a success or an ImageError naming the file; nothing crashes or runs out."""
    import json
    import subprocess
    import sys

    n_per_seed = -(-1000 // len(seed_files()))
    r = subprocess.run([sys.executable, "-c", _FUZZ_CHILD, str(3 * 2**30), str(Path(__file__).parent), str(tmp_path),
                        str(n_per_seed)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["calls"] == n_per_seed * len(seed_files()) * len(ENTRY_POINTS) >= 4000
    assert not res["raised"], res["examples"][:20]
    assert not res["unnamed"], res["unnamed"][:20]


# --------------------------------------------------------------------------------------------------
# colour spaces, layouts and orientations: the same tile as RGB, or a clear refusal


def _tile() -> np.ndarray:
    from napari_prunuclei.nuclei.synthetic import synthetic_tile

    return synthetic_tile(128, seed=31)[0]


def _colour_family_files(tmp_path: Path) -> dict[str, tuple[Path, np.ndarray]]:
    """Each file with the RGB image a viewer shows for it."""
    import tifffile
    from PIL import Image

    rgb = _tile()
    out: dict[str, tuple[Path, np.ndarray]] = {}

    def put(name, data: bytes, expect):
        (tmp_path / name).write_bytes(data)
        out[name] = (tmp_path / name, expect)

    cmyk = np.concatenate([255 - rgb, np.zeros(rgb.shape[:2] + (1,), np.uint8)], -1)
    put("cmyk.tif", _tiff_bytes(cmyk, photometric="separated"), rgb)
    b = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(b, format="TIFF")
    put("cmyk_pillow.tif", b.getvalue(), np.asarray(Image.fromarray(rgb).convert("CMYK").convert("RGB")))
    b = io.BytesIO()
    Image.fromarray(rgb).convert("YCbCr").save(b, format="TIFF")
    put("ycbcr.tif", b.getvalue(), np.asarray(Image.fromarray(rgb).convert("YCbCr").convert("RGB")))
    put("planar.tif", _tiff_bytes(np.moveaxis(rgb, -1, 0).copy(), photometric="rgb", planarconfig="separate"), rgb)
    pal_img = Image.fromarray(rgb).quantize(64)
    pal = np.asarray(pal_img)
    cmap = np.zeros((3, 256), np.uint16)
    entries = np.asarray(pal_img.getpalette()[: 3 * 64], np.uint16).reshape(-1, 3)
    cmap[:, :64] = entries.T * 257
    put("palette.tif", _tiff_bytes(pal, photometric="palette", colormap=cmap), entries.astype(np.uint8)[pal])
    b = io.BytesIO()
    with tifffile.TiffWriter(b) as tw:  # a 64x64 thumbnail as page 0, then the image
        tw.write(rgb[::2, ::2][:64, :64], photometric="rgb")
        tw.write(rgb, photometric="rgb")
    put("thumbnail_first.tif", b.getvalue(), rgb)
    b = io.BytesIO()
    with tifffile.TiffWriter(b, ome=True) as tw:  # an OME-TIFF whose first series is a small macro
        tw.write(rgb[:64, :64], photometric="rgb", metadata={"axes": "YXS"})
        tw.write(rgb, photometric="rgb", metadata={"axes": "YXS"})
    put("ome_macro_first.ome.tif", b.getvalue(), rgb)
    stored = np.rot90(rgb, 1).copy()  # stored rotated; Orientation 6 (rotate 90 clockwise) shows rgb
    put("orientation6.tif", _tiff_bytes(stored, photometric="rgb", extratags=[(274, "H", 1, 6, True)]), rgb)
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 counter-clockwise to show
    b = io.BytesIO()
    Image.fromarray(np.rot90(rgb, -1).copy()).save(b, format="JPEG", quality=100, exif=exif.tobytes())
    shown = np.asarray(Image.open(io.BytesIO(b.getvalue())).transpose(Image.Transpose.ROTATE_90))
    put("exif8.jpg", b.getvalue(), shown)
    return out


@pytest.mark.parametrize("name", ["cmyk.tif", "cmyk_pillow.tif", "ycbcr.tif", "planar.tif", "palette.tif",
                                  "thumbnail_first.tif", "ome_macro_first.ome.tif", "orientation6.tif", "exif8.jpg"])
def test_colour_families_read_as_the_rgb_a_viewer_shows(tmp_path, name):
    path, expect = _colour_family_files(tmp_path)[name]
    for reader in (read_image, open_image):
        got = np.asarray(reader(path))[..., :3]
        assert got.shape == expect.shape
        assert np.abs(got.astype(int) - expect.astype(int)).max() <= 1, reader.__name__
    data, meta, kind = read_he(path)[0]
    assert kind == "image" and np.abs(np.asarray(data)[..., :3].astype(int) - expect.astype(int)).max() <= 1


@pytest.mark.parametrize("name", ["cmyk.tif", "planar.tif", "thumbnail_first.tif", "orientation6.tif"])
def test_colour_families_segment_as_the_rgb_tile(tmp_path, name):
    from napari_prunuclei.runtime.pipeline import segment

    path, _ = _colour_family_files(tmp_path)[name]
    ref = segment(_tile(), device="cpu").labels
    got = segment(open_image(path), device="cpu").labels
    np.testing.assert_array_equal(got, ref)


def test_colour_spaces_that_cannot_be_rgb_are_refused_by_name(tmp_path):
    rgb = _tile()
    lab = np.zeros(rgb.shape, np.uint8)
    (tmp_path / "lab.tif").write_bytes(_tiff_bytes(lab, photometric="cielab"))
    six = np.concatenate([255 - rgb, np.zeros(rgb.shape[:2] + (3,), np.uint8)], -1)
    (tmp_path / "inks.tif").write_bytes(_tiff_bytes(six, photometric="separated", extratags=[(332, "H", 1, 2, True)]))
    for name, why in (("lab.tif", "L*a*b*"), ("inks.tif", "not CMYK")):
        for reader in (read_image, open_image):
            with pytest.raises(ImageError, match=why) as e:
                reader(tmp_path / name)
            assert name in str(e.value)


def test_planar_cmyk_reads_as_rgb(tmp_path):
    rgb = _tile()
    cmyk = np.concatenate([255 - rgb, np.zeros(rgb.shape[:2] + (1,), np.uint8)], -1)
    p = tmp_path / "planar_cmyk.tif"
    p.write_bytes(_tiff_bytes(np.moveaxis(cmyk, -1, 0).copy(), photometric="separated", planarconfig="separate"))
    for reader in (read_image, open_image):
        assert np.array_equal(np.asarray(reader(p)), rgb)


def test_a_stack_of_same_size_pages_is_refused_alike_by_every_reader(tmp_path):
    import tifffile

    rgb = _tile()
    p = tmp_path / "stack.tif"
    tifffile.imwrite(p, np.stack([rgb, rgb]), photometric="rgb")  # one series of 2 pages
    for reader in (read_image, open_image):
        with pytest.raises(ImageError, match=r"holds 2 images of 128x128"):
            reader(p)


@pytest.mark.parametrize("suffix", [".tif", ".png", ".svs", ".jpg"])
def test_a_zero_byte_file_is_called_empty_by_every_reader(tmp_path, suffix):
    """It was called "corrupt, truncated or unsupported", which sends a user looking for a broken file."""
    p = tmp_path / f"nothing{suffix}"
    p.write_bytes(b"")
    for entry, call in ENTRY_POINTS.items():
        with pytest.raises(ImageError, match=r"is empty \(0 bytes\)") as e:
            call(p)
        assert str(p) in str(e.value), entry


@pytest.mark.parametrize("cut", [0.5, 0.99])
def test_a_truncated_tiled_tiff_is_refused_when_opened_even_lazily(tmp_path, monkeypatch, cut):
    """Hostile pass: a large TIFF cut short opened lazily (only its first tile decoded) and failed tiles later,
    after the networks had run for minutes; the header shows the cut at once."""
    monkeypatch.setattr(_reader, "LAZY_PIXELS", 100 * 100)  # the lazy path, as for a slide
    data = _tiff_bytes(_rgb(512, 512), photometric="rgb", tile=(64, 64), compression="zlib")
    p = tmp_path / "cut.tif"
    p.write_bytes(data[: int(len(data) * cut)])
    for entry, call in ENTRY_POINTS.items():
        if entry == "read_labels":
            continue
        with pytest.raises(ImageError, match=r"is truncated or corrupt: its tile or strip \d+ ends at byte") as e:
            call(p)
        assert str(p) in str(e.value), entry


def test_uncompressed_tiles_sharing_their_bytes_are_refused(tmp_path):
    """Hostile pass: 1.4 MB declaring 100000 x 100000 px, every raw tile pointing at the same bytes, opened and
    ran for hours. Raw tiles of a real file never share bytes."""
    import struct

    data = bytearray(_tiff_bytes(_rgb(256, 256), photometric="rgb", tile=(64, 64), compression=None))
    import tifffile

    with tifffile.TiffFile(io.BytesIO(bytes(data))) as tf:
        offsets_tag = tf.pages[0].tags["TileOffsets"]
        pos, n = offsets_tag.valueoffset, len(tf.pages[0].dataoffsets)
        first = tf.pages[0].dataoffsets[0]
    data[pos: pos + 4 * n] = struct.pack(f"<{n}I", *([first] * n))  # every tile: the first tile's bytes
    data = data[: first + 64 * 64 * 3]  # the file keeps one tile's bytes
    p = tmp_path / "shared.tif"
    p.write_bytes(bytes(data))
    for entry, call in ENTRY_POINTS.items():
        if entry == "read_labels":
            continue
        with pytest.raises(ImageError, match="they share bytes"):
            call(p)


def test_an_unreadable_file_is_said_so_not_called_corrupt(tmp_path, monkeypatch):
    """Hostile pass: a file without read permission was called "corrupt, truncated or unsupported"."""
    import builtins

    p = tmp_path / "locked.tif"
    p.write_bytes(_tiff_bytes(_rgb(), photometric="rgb"))
    real = builtins.open

    def no_access(file, *args, **kwargs):  # (root reads any file: the refusal is simulated)
        if str(file) == str(p):
            raise PermissionError(13, "Permission denied", str(file))
        return real(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_access)
    with pytest.raises(ImageError, match="permission denied") as e:
        read_image(p)
    assert str(p) in str(e.value)


def test_what_is_not_a_regular_file_is_said_so_by_name(tmp_path):
    """Hostile pass: a pipe, a link to nothing, a loop of links and a folder named as images were all "not found"
    (and skipped without a word in a folder)."""
    import os

    (tmp_path / "folder.tif").mkdir()
    os.mkfifo(tmp_path / "pipe.tif")
    (tmp_path / "dangling.tif").symlink_to(tmp_path / "gone.tif")
    (tmp_path / "loop.tif").symlink_to(tmp_path / "loop.tif")
    said = {"folder.tif": "is a folder, not a file", "pipe.tif": "is not a regular file",
            "dangling.tif": "is a link to a missing file", "loop.tif": "is a link to a missing file",
            "absent.tif": "file not found"}
    for name, why in said.items():
        for entry, call in ENTRY_POINTS.items():
            with pytest.raises(ImageError, match=why) as e:
                call(tmp_path / name)
            assert name in str(e.value), entry
    from napari_prunuclei.io.slides import open_slide  # the OpenSlide formats' reader says the same

    (tmp_path / "folder.mrxs").mkdir()
    with pytest.raises(ImageError, match="is a folder, not a file"):
        open_slide(tmp_path / "folder.mrxs")


def test_a_folder_of_images_names_its_entries_that_are_not_files(tmp_path, capsys):
    import os

    from napari_prunuclei.cli.main import main

    tifffile_bytes = _tiff_bytes(_rgb(96, 96), photometric="rgb")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.tif").write_bytes(tifffile_bytes)
    os.mkfifo(folder / "pipe.tif")
    (folder / "dangling.tif").symlink_to(folder / "gone.tif")
    code = main(["segment", str(folder), "-o", str(tmp_path / "out"), "--device", "cpu"])
    err = capsys.readouterr()
    text = err.out + err.err
    assert code == 1  # some failed, the good one written
    assert "pipe.tif" in text and "not a regular file" in text and "dangling.tif" in text
    assert (tmp_path / "out" / "good_labels.tif").is_file()
