"""Uploads: zip-slip, zip bombs, decompression bombs, truncated and non-image files."""
import io
import struct
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image

from ocvis.data import load_image_folder
from ocvis.errors import DataError
from ocvis.uploads import extract_zip


def _png(seed=0, size=(20, 20), mode="RGB") -> bytes:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(buf, "PNG")
    return buf.getvalue()


def _jpeg(seed=0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (40, 40, 3), dtype=np.uint8)
                    ).save(buf, "JPEG")
    return buf.getvalue()


def _zip(entries: dict, compression=zipfile.ZIP_DEFLATED) -> io.BytesIO:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    buf.seek(0)
    return buf


def test_class_folders_with_junk(tmp_path):
    z = _zip({"set/cats/a.png": _png(0), "set/cats/b.png": _png(1), "set/dogs/c.png": _png(2),
              "set/dogs/d.jpg": _jpeg(3), "set/readme.txt": b"hello", "set/dogs/e.png": b"xx",
              "__MACOSX/set/._a.png": b"junk"})
    r = extract_zip(z, "pets.zip", tmp_path)
    assert r.classes == ["cats", "dogs"] and r.images == 4
    assert r.skipped_non_image == 1 and r.skipped_corrupt == 1
    ds = load_image_folder(r.path, use_cache=False)
    assert ds.classes == ("cats", "dogs")


def test_flat_folder_is_one_normal_class(tmp_path):
    r = extract_zip(_zip({f"{i}.png": _png(i, mode="L") for i in range(5)}), "parts.zip",
                    tmp_path)
    assert r.classes == ["parts"] and any("one class" in m for m in r.messages)


@pytest.mark.parametrize("name", ["../evil.png", "a/../../evil.png", "/etc/evil.png",
                                  "C:/evil.png"])
def test_zip_slip_refused(tmp_path, name):
    with pytest.raises(DataError, match="refused"):
        extract_zip(_zip({"ok/a.png": _png(), name: _png(1)}), "x.zip", tmp_path / "d")
    assert not (tmp_path / "evil.png").exists()
    if (tmp_path / "d").exists():
        assert not list((tmp_path / "d").iterdir())


def test_symlink_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("c/link.png")
        info.external_attr = (0o120777 << 16)
        z.writestr(info, "/etc/passwd")
    buf.seek(0)
    with pytest.raises(DataError, match="symbolic link"):
        extract_zip(buf, "s.zip", tmp_path)


def test_zip_bomb_ratio_refused(tmp_path):
    # 1,000x: 5 MB of zeros compresses to ~5 KB
    z = _zip({"c/a.png": _png(), "c/big.png": b"\0" * (5 << 20)})
    with pytest.raises(DataError, match="zip bomb"):
        extract_zip(z, "bomb.zip", tmp_path)
    assert not list(tmp_path.glob("bomb*"))  # nothing half-extracted is left


def test_total_size_and_count_limits(tmp_path):
    z = _zip({f"c/{i}.png": _png(i) for i in range(5)})
    with pytest.raises(DataError, match="limit is 3"):
        extract_zip(z, "n.zip", tmp_path, max_files=3)
    z.seek(0)
    with pytest.raises(DataError, match="MiB"):
        extract_zip(z, "n.zip", tmp_path, max_total_bytes=100)


def _understate_size(data: bytes, name: str, fake: int) -> bytes:
    """The zip with member ``name`` claiming ``fake`` uncompressed bytes in both of its
    headers (local and central directory): a header that lies."""
    buf = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        info = z.getinfo(name)
    struct.pack_into("<I", buf, info.header_offset + 22, fake)
    cd = buf.find(b"PK\x01\x02")
    while cd != -1:
        n = struct.unpack("<H", buf[cd + 28:cd + 30])[0]
        if buf[cd + 46:cd + 46 + n] == name.encode():
            struct.pack_into("<I", buf, cd + 24, fake)
        cd = buf.find(b"PK\x01\x02", cd + 4)
    return bytes(buf)


def test_lying_header_is_caught_while_reading(tmp_path):
    """A member whose headers understate its size passes the header check, and is caught
    while reading: never written beyond what it declared, skipped and named."""
    real = _png(7, size=(60, 60))
    data = _zip({"c/liar.png": real, "c/ok.png": _png(1), "d/ok.png": _png(2)}).getvalue()
    lying = _understate_size(data, "c/liar.png", 100)
    with zipfile.ZipFile(io.BytesIO(lying)) as z:
        assert z.getinfo("c/liar.png").file_size == 100 < len(real)  # the header lies
    r = extract_zip(io.BytesIO(lying), "liar.zip", tmp_path, max_total_bytes=len(real) - 1)
    assert r.images == 2 and r.skipped_corrupt == 1
    assert "c/liar.png" in " ".join(r.messages)
    assert not (r.path / "c" / "liar.png").exists()


def test_read_limit_stops_an_oversized_member(tmp_path, monkeypatch):
    """The per-image limit is enforced while reading, not from the header."""
    import ocvis.uploads

    monkeypatch.setattr(ocvis.uploads, "MAX_IMAGE_BYTES", 500)
    z = _zip({"c/big.png": _png(3, size=(64, 64)), "c/ok.png": b"x" * 10})
    with pytest.raises(DataError, match="expands beyond the size limit"):
        extract_zip(z, "big.zip", tmp_path)


def _huge_png_header(w=100_000, h=100_000) -> bytes:
    """A tiny PNG file that claims w x h pixels (a decompression bomb)."""
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
            chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_decompression_bomb_png_skipped(tmp_path):
    r = extract_zip(_zip({"c/ok.png": _png(), "c/bomb.png": _huge_png_header(),
                          "d/ok.png": _png(1)}), "b.zip", tmp_path)
    assert r.images == 2 and r.skipped_corrupt == 1
    # and the loader refuses it too if it is already on disk
    (r.path / "c" / "bomb.png").write_bytes(_huge_png_header())
    with pytest.warns(UserWarning, match="unreadable"):
        ds = load_image_folder(r.path, use_cache=False)
    assert ds.skipped == 1


def test_truncated_jpeg_skipped(tmp_path):
    full = _jpeg(5)
    r = extract_zip(_zip({"c/ok.jpg": full, "c/cut.jpg": full[: len(full) // 2],
                          "d/ok.jpg": _jpeg(6)}), "t.zip", tmp_path)
    # a truncated JPEG passes the header check at upload; the loader skips it at decode
    ds_warn = None
    with pytest.warns(UserWarning) as rec:
        ds = load_image_folder(r.path, use_cache=False)
    ds_warn = [str(w.message) for w in rec]
    assert ds.skipped + r.skipped_corrupt == 1
    assert len(ds.x_train) + len(ds.x_test) == 2
    assert ds_warn


def test_not_a_zip(tmp_path):
    with pytest.raises(DataError, match="not a readable .zip"):
        extract_zip(io.BytesIO(b"hello"), "x.zip", tmp_path)
    with pytest.raises(DataError, match="empty"):
        extract_zip(_zip({}), "e.zip", tmp_path)
