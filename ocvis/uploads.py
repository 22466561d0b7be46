"""Safe extraction of an uploaded ``.zip`` of images into the upload folder
(``$OCVIS_UPLOAD_DIR``, default ``./uploads``; never inside a dataset root).

Accepted layouts: class folders (``cats/1.png``, ``dogs/2.jpg``; one top-level folder around
them is fine) or images in one folder (all normal: one class named after the upload).

Defences, each with a clear message:
* zip-slip: absolute paths, drive letters, ``..`` components and symlinks are refused; every
  target path is checked to stay inside the destination folder;
* zip bombs: caps on the number of files, on the total uncompressed size and on the ratio of
  uncompressed to compressed size; sizes are counted while extracting, not taken from the
  headers;
* decompression bombs and disguised files: each image is opened as one of the documented
  formats only, under a per-image pixel cap (:func:`ocvis.data.datasets.open_image`);
  non-images, corrupt images and members damaged inside the archive (bad CRC, broken deflate
  stream) are skipped and named;
* two uploads with the same name get separate temporary folders and separate final names.
"""
from __future__ import annotations

import errno
import io
import logging
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ocvis.config import upload_root
from ocvis.data.datasets import IMAGE_EXTENSIONS, open_image
from ocvis.errors import DataError

log = logging.getLogger(__name__)
MAX_FILES = 100_000
MAX_TOTAL_BYTES = 1 << 30          # 1 GiB uncompressed
MAX_RATIO = 100.0                  # uncompressed / compressed, for the whole archive
MAX_IMAGE_BYTES = 50 << 20         # one image file
MAX_NAMED = 20                     # skipped files named in the messages (then a count)
SPLITS = ("train", "test")


@dataclass
class UploadReport:
    path: Path
    classes: list[str]
    images: int
    skipped_non_image: int = 0
    skipped_corrupt: int = 0
    messages: list[str] = field(default_factory=list)
    skipped_files: list[tuple[str, str]] = field(default_factory=list)  # (name, why)
    split_layout: bool = False  # extracted as {train,test}/<class>/

    @property
    def dataset_name(self) -> str:
        return f"folder:{self.path}"


def _safe_name(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")[:60]
    return s or "upload"


def _member_parts(info: zipfile.ZipInfo) -> tuple[str, ...]:
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise DataError(f"refused: the archive entry {info.filename!r} has an absolute path")
    parts = PurePosixPath(name).parts
    if any(p == ".." for p in parts):
        raise DataError(f"refused: the archive entry {info.filename!r} points outside the "
                        "upload folder ('..')")
    mode = (info.external_attr >> 16) & 0xFFFF
    if stat.S_ISLNK(mode):
        raise DataError(f"refused: the archive entry {info.filename!r} is a symbolic link")
    return tuple(p for p in parts if p not in ("", "."))


def _check_image(data: bytes) -> None:
    """Open the header (documented formats only, pixel cap) and verify the file."""
    with open_image(io.BytesIO(data)) as im:
        im.verify()


def extract_zip(source, name: str, dest_root: str | Path | None = None, *,
                max_files: int = MAX_FILES, max_total_bytes: int = MAX_TOTAL_BYTES,
                max_ratio: float = MAX_RATIO) -> UploadReport:
    """Extract an uploaded zip (path or file-like) to ``<upload root>/<name>`` (a new,
    unique folder: two uploads with the same name never share or overwrite one)."""
    dest_root = Path(dest_root) if dest_root is not None else upload_root()
    base = _safe_name(Path(str(name)).stem)
    try:
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"not a readable .zip file: {exc}") from exc
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if not infos:
            raise DataError("the archive is empty")
        if len(infos) > max_files:
            raise DataError(f"refused: {len(infos)} files in the archive, the limit is "
                            f"{max_files}")
        members = [(i, _member_parts(i)) for i in infos]  # validates every path first
        declared = sum(i.file_size for i in infos)
        packed = sum(i.compress_size for i in infos) or 1
        if declared > max_total_bytes:
            raise DataError(f"refused: {declared / 2**20:.0f} MiB uncompressed, the limit is "
                            f"{max_total_bytes / 2**20:.0f} MiB")
        if declared / packed > max_ratio:
            raise DataError(f"refused: the archive expands {declared / packed:.0f}x "
                            f"(limit {max_ratio:.0f}x) — this looks like a zip bomb")
        members = [(i, p) for i, p in members
                   if not any(s.startswith(".") or s == "__MACOSX" for s in p)]
        # one wrapping folder around everything is dropped
        tops = {p[0] for _, p in members if len(p) > 1}
        if len(tops) == 1 and all(len(p) > 1 for _, p in members):
            members = [(i, p[1:]) for i, p in members]
        flat = all(len(p) == 1 for _, p in members)
        # a {train,test}/<class>/<file> layout keeps its own split (as the loader reads it)
        imgs = [p for _, p in members if Path(p[-1]).suffix.lower() in IMAGE_EXTENSIONS]
        split_layout = bool(imgs) and all(len(p) >= 3 for p in imgs) and \
            {p[0].lower() for p in imgs} == set(SPLITS)
        dest_root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest_root, prefix=f".{base}.", suffix=".partial"))
        report = UploadReport(path=dest_root / base, classes=[], images=0)
        written = 0
        try:
            for info, parts in members:
                if Path(parts[-1]).suffix.lower() not in IMAGE_EXTENSIONS:
                    report.skipped_non_image += 1
                    report.skipped_files.append((info.filename, "not an image file"))
                    continue
                if split_layout:
                    rel = (parts[0].lower(), parts[-2], parts[-1])  # <split>/<class>/<file>
                elif flat:
                    rel = (base, parts[-1])
                elif len(parts) >= 2:
                    rel = (parts[-2], parts[-1])  # <class>/<file>
                else:
                    report.skipped_non_image += 1  # a loose file beside class folders
                    report.skipped_files.append((info.filename, "a loose file beside the "
                                                                "class folders"))
                    continue
                rel = tuple(_safe_name(r) if i < len(rel) - 1 else r
                            for i, r in enumerate(rel))
                out = tmp.joinpath(*rel).resolve()
                if not str(out).startswith(str(tmp.resolve()) + os.sep):
                    raise DataError(f"refused: {info.filename!r} escapes the upload folder")
                try:
                    data = _read_limited(zf, info,
                                         min(MAX_IMAGE_BYTES, max_total_bytes - written))
                except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
                    # bad CRC, corrupt deflate stream, a header that lies about the size
                    report.skipped_corrupt += 1
                    report.skipped_files.append((info.filename, f"damaged in the archive "
                                                                f"({exc})"))
                    log.warning("skipping %s: %s", info.filename, exc)
                    continue
                written += len(data)
                try:
                    _check_image(data)
                except Exception as exc:  # noqa: BLE001 - any decode problem: skip + count
                    report.skipped_corrupt += 1
                    report.skipped_files.append((info.filename, _why(exc)))
                    log.warning("skipping %s: %s", info.filename, exc)
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
                k = 1
                while out.exists():  # same file name from two sub-folders: keep both
                    k += 1
                    out = out.with_name(f"{Path(rel[-1]).stem}-{k}{Path(rel[-1]).suffix}")
                out.write_bytes(data)
                report.images += 1
            if report.images == 0:
                raise DataError(f"no readable image in the archive ({report.skipped_non_image} "
                                f"non-image and {report.skipped_corrupt} corrupt file(s) "
                                f"skipped{_names(report.skipped_files)})")
            target = _claim(tmp, dest_root, base)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    report.path = target
    report.split_layout = split_layout
    class_dirs = [d for sp in SPLITS if (target / sp).is_dir()
                  for d in (target / sp).iterdir()] if split_layout else list(target.iterdir())
    report.classes = sorted({p.name for p in class_dirs if p.is_dir()})
    if report.skipped_non_image:
        names = [f for f, why in report.skipped_files if why.startswith(("not an image",
                                                                          "a loose file"))]
        report.messages.append(f"{report.skipped_non_image} non-image file(s) skipped: "
                               + _short_list(names))
    if report.skipped_corrupt:
        bad = [f"{f} ({why})" for f, why in report.skipped_files
               if not why.startswith(("not an image", "a loose file"))]
        report.messages.append(f"{report.skipped_corrupt} corrupt or over-large image(s) "
                               "skipped: " + _short_list(bad))
    if len(report.classes) == 1:
        report.messages.append("one class only: every image is normal (no abnormal test "
                               "samples, so metrics will be undefined)")
    return report


def _claim(tmp: Path, dest_root: Path, base: str) -> Path:
    """Rename the finished temporary folder to ``base``, ``base-2``, ... -- the first name
    no other upload holds. ``rename`` onto a non-empty folder fails, so two uploads racing
    for one name both end up whole, under different names."""
    for n in range(1, 10_000):
        target = dest_root / (base if n == 1 else f"{base}-{n}")
        if target.exists() and any(target.iterdir()):
            continue
        try:
            os.rename(tmp, target)
            return target
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                raise
    raise DataError(f"no free folder name for {base!r} in {dest_root}")


def _why(exc: BaseException) -> str:
    msg = str(exc) or type(exc).__name__
    return msg if len(msg) <= 120 else msg[:117] + "..."


def _short_list(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_NAMED])
    return shown + (f" and {len(items) - MAX_NAMED} more" if len(items) > MAX_NAMED else "")


def _names(files: list[tuple[str, str]]) -> str:
    return ": " + _short_list([f for f, _ in files]) if files else ""


def _read_limited(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """Read one member, stopping as soon as it exceeds ``limit`` bytes (headers can lie)."""
    out = bytearray()
    with zf.open(info) as f:
        while True:
            chunk = f.read(1 << 16)
            if not chunk:
                break
            out += chunk
            if len(out) > limit:
                raise DataError(f"refused: {info.filename!r} expands beyond the size limit")
    return bytes(out)
