"""Dataset registry and loaders.

Every dataset is returned as an :class:`ImageDataset` of ``uint8`` arrays shaped
``N x C x 32 x 32`` with integer labels; protocols (``ocvis.data.protocols``) turn them into
float tensors in [0, 1]. Sizes follow the papers: 28 x 28 images are zero-padded to 32 x 32
(ICS feature-learning paper, App. A), scikit-learn's 8 x 8 digits are up-sampled.

Files live under the data root (``$OCVIS_DATA_ROOT``, default ``./data``):

* ``mnist``          ``<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``
* ``fashion-mnist``  ``<root>/FashionMNIST/raw/...`` (same file names)
* ``cifar10``        ``<root>/cifar-10-batches-py/`` (torchvision) or a JPEG copy in
                     ``<root>/cifar10-jpeg/{train,test}/<class>/*.jpg``
* ``folder:<path>``  any tree of images: ``<path>/<class>/*`` or
                     ``<path>/{train,test}/<class>/*`` or a flat folder (one class)

Nothing is downloaded unless ``download=True`` is passed and the files are missing.
"""
from __future__ import annotations

import hashlib
import itertools
import logging
import os
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from ocvis.config import cache_root, data_root, folder_roots
from ocvis.errors import DataError, OcvisWarning

log = logging.getLogger(__name__)

IMAGE_SIZE = 32
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                    ".pgm", ".pbm")
#: the only formats PIL may decode (it otherwise recognises dozens by content, PostScript
#: through Ghostscript among them, whatever the file is named)
IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")
#: per-image pixel cap: every image becomes 32 x 32, so anything above ~16 megapixels is
#: refused instead of decoded (PIL's own cap of ~89 MP lets a 200 MB upload hold hundreds
#: of 9,000 x 9,000 images, each 243 MB decoded)
MAX_IMAGE_PIXELS = 4096 * 4096
#: a folder dataset reads at most this many directory entries (a typo like "/" must not
#: walk the whole disk)
MAX_FOLDER_ENTRIES = 200_000
MNIST_CLASSES = tuple(str(i) for i in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
# scikit-learn's digits carry no train / test split; this fixed, stratified one defines it.
DIGITS_TEST_FRACTION = 0.3
FOLDER_TEST_FRACTION = 0.3


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """A labelled image dataset as uint8 arrays ``N x C x 32 x 32``."""

    name: str
    classes: tuple[str, ...]
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    skipped: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def channels(self) -> int:
        return int(self.x_train.shape[1])

    def class_counts(self) -> dict[str, np.ndarray]:
        k = len(self.classes)
        return {"train": np.bincount(self.y_train, minlength=k),
                "test": np.bincount(self.y_test, minlength=k)}


@dataclass(frozen=True)
class DatasetInfo:
    """What the registry knows about a dataset before loading it."""

    name: str
    title: str
    classes: tuple[str, ...]
    channels: int
    files: Callable[[Path], list[Path]]
    loader: Callable[[Path, bool], ImageDataset]
    downloadable: bool

    def location(self, root: Path | None = None) -> Path:
        root = data_root() if root is None else Path(root)
        files = self.files(root)
        return files[0].parent if files else root

    def present(self, root: Path | None = None) -> bool:
        root = data_root() if root is None else Path(root)
        files = self.files(root)
        return all(f.exists() for f in files)


# ----------------------------------------------------------------------------- helpers
def _freeze(*arrays: np.ndarray) -> None:
    for a in arrays:
        a.flags.writeable = False


def pad_to_32(x: np.ndarray) -> np.ndarray:
    """Zero-pad ``N x C x 28 x 28`` to 32 x 32 (2 pixels each side), as the ICS papers do."""
    h, w = x.shape[-2:]
    if (h, w) == (IMAGE_SIZE, IMAGE_SIZE):
        return x
    ph, pw = IMAGE_SIZE - h, IMAGE_SIZE - w
    if ph < 0 or pw < 0:
        raise DataError(f"cannot pad {h}x{w} images to {IMAGE_SIZE}x{IMAGE_SIZE}")
    return np.pad(x, ((0, 0), (0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)))


def _idx_files(root: Path, folder: str) -> list[Path]:
    raw = root / folder / "raw"
    return [raw / n for n in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")]


def _read_idx(path: Path) -> np.ndarray:
    """Read an (uncompressed) IDX file as torchvision's MNIST stores it."""
    data = path.read_bytes()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise DataError(f"{path} is not an unsigned-byte IDX file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise DataError(f"{path} is truncated ({arr.size} of {int(np.prod(dims))} values)")
    return arr.reshape(dims)


def _missing_message(info_name: str, where: Path, extra: str = "") -> str:
    return (f"dataset '{info_name}' not found: expected its files in {where}. Put the files "
            f"there, set OCVIS_DATA_ROOT to the folder that holds them, or pass "
            f"download=True on a machine with internet access.{extra}")


def _load_idx_dataset(name: str, folder: str, classes: tuple[str, ...], tv_class: str,
                      root: Path, download: bool) -> ImageDataset:
    files = _idx_files(root, folder)
    if not all(f.exists() for f in files):
        if not download:
            raise DataError(_missing_message(name, files[0].parent))
        import torchvision.datasets as tvd  # lazy: only needed to download

        getattr(tvd, tv_class)(root=str(root), train=True, download=True)
        getattr(tvd, tv_class)(root=str(root), train=False, download=True)
    xtr, ytr, xte, yte = (_read_idx(f) for f in files)
    x_train = pad_to_32(xtr[:, None])
    x_test = pad_to_32(xte[:, None])
    ds = ImageDataset(name, classes, x_train, ytr.astype(np.int64), x_test,
                      yte.astype(np.int64), source=str(files[0].parent))
    _freeze(ds.x_train, ds.y_train, ds.x_test, ds.y_test)
    return ds


def _load_digits(root: Path, download: bool) -> ImageDataset:
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]
    x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
    x = np.clip(np.rint(x.numpy() * 255.0), 0, 255).astype(np.uint8)
    y = d.target.astype(np.int64)
    idx_tr, idx_te = train_test_split(np.arange(len(y)), test_size=DIGITS_TEST_FRACTION,
                                      stratify=y, random_state=0)
    idx_tr.sort()
    idx_te.sort()
    ds = ImageDataset("digits", MNIST_CLASSES, x[idx_tr], y[idx_tr], x[idx_te], y[idx_te],
                      source="scikit-learn (bundled)")
    _freeze(ds.x_train, ds.y_train, ds.x_test, ds.y_test)
    return ds


def _cifar_files(root: Path) -> list[Path]:
    tv = root / "cifar-10-batches-py"
    if tv.exists():
        return [tv / f"data_batch_{i}" for i in range(1, 6)] + [tv / "test_batch"]
    jpg = root / "cifar10-jpeg"
    return [jpg / "train", jpg / "test"]


def _load_cifar10(root: Path, download: bool) -> ImageDataset:
    tv = root / "cifar-10-batches-py"
    jpg = root / "cifar10-jpeg"
    if tv.exists() or (download and not jpg.exists()):
        import torchvision.datasets as tvd

        try:
            tr = tvd.CIFAR10(str(root), train=True, download=download)
            te = tvd.CIFAR10(str(root), train=False, download=download)
        except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted"
            raise DataError(_missing_message("cifar10", tv)) from exc
        ds = ImageDataset("cifar10", CIFAR10_CLASSES,
                          np.ascontiguousarray(tr.data.transpose(0, 3, 1, 2)),
                          np.asarray(tr.targets, dtype=np.int64),
                          np.ascontiguousarray(te.data.transpose(0, 3, 1, 2)),
                          np.asarray(te.targets, dtype=np.int64), source=str(tv))
        _freeze(ds.x_train, ds.y_train, ds.x_test, ds.y_test)
        return ds
    if (jpg / "train").is_dir() and (jpg / "test").is_dir():
        ds = load_image_folder(jpg, name="cifar10", class_order=CIFAR10_CLASSES,
                               check_roots=False)
        return ds
    raise DataError(_missing_message(
        "cifar10", tv, f" A JPEG class-folder copy in {jpg}/{{train,test}}/<class>/ works too."))


# ----------------------------------------------------------------------------- folders
def _entries(folder: Path) -> list[os.DirEntry]:
    """The entries of one folder, never following a symbolic link out of it; unreadable
    folders (permissions, /proc) give no entries instead of an error."""
    try:
        with os.scandir(folder) as it:
            return list(itertools.islice(it, MAX_FOLDER_ENTRIES + 1))
    except OSError as exc:
        log.warning("cannot list %s: %s", folder, exc)
        return []


def _is(entry: os.DirEntry, kind: str) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False) if kind == "dir" else \
            entry.is_file(follow_symlinks=False)
    except OSError:
        return False


def _list_images(folder: Path) -> list[Path]:
    entries = _entries(folder)
    if len(entries) > MAX_FOLDER_ENTRIES:
        raise DataError(f"{folder} holds more than {MAX_FOLDER_ENTRIES} entries; choose a "
                        "folder of images")
    return sorted(Path(e.path) for e in entries
                  if _is(e, "file") and Path(e.name).suffix.lower() in IMAGE_EXTENSIONS)


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(Path(e.path) for e in _entries(folder)
                  if _is(e, "dir") and not e.name.startswith("."))


GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F", "P;L"}


def open_image(fp):
    """``PIL.Image.open`` restricted to :data:`IMAGE_FORMATS` and :data:`MAX_IMAGE_PIXELS`
    (raises for anything else: another format, a decompression bomb)."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        im = Image.open(fp, formats=IMAGE_FORMATS)
    w, h = im.size
    if w * h > MAX_IMAGE_PIXELS:
        im.close()
        raise DataError(f"{w} x {h} pixels exceed the limit of {MAX_IMAGE_PIXELS} per image")
    return im


def read_image(path: Path) -> tuple[np.ndarray, bool]:
    """Decode one image to a 32 x 32 RGB uint8 array; also say whether it is grey.

    Raises for corrupt, truncated or over-large files and for formats other than the
    documented ones (:func:`open_image`).
    """
    from PIL import Image

    with open_image(path) as im:
        im.draft("RGB", (IMAGE_SIZE * 2, IMAGE_SIZE * 2))  # fast JPEG down-scaling
        grey = im.mode in GREY_MODES or (im.mode == "P" and _palette_is_grey(im))
        im.load()
        if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            arr = np.asarray(im, dtype=np.float64)
            hi = arr.max() if arr.max() > 0 else 1.0
            im = Image.fromarray(np.uint8(np.clip(arr / hi * 255.0, 0, 255)))
        rgb = im.convert("RGB")
        if rgb.size != (IMAGE_SIZE, IMAGE_SIZE):
            rgb = rgb.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8), grey


def _palette_is_grey(im) -> bool:
    pal = im.getpalette() or []
    triples = np.asarray(pal[: (len(pal) // 3) * 3]).reshape(-1, 3)
    return bool(len(triples)) and bool(np.all(triples == triples[:, :1]))


def _read_many(paths: list[Path]) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    imgs, greys, bad = [], [], []
    for p in paths:
        try:
            arr, grey = read_image(p)
        except Exception as exc:  # noqa: BLE001 - any decode failure means "skip this file"
            log.warning("skipping unreadable image %s: %s", p, exc)
            bad.append(p)
            continue
        imgs.append(arr)
        greys.append(grey)
    if not imgs:
        return np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8), np.zeros(0, bool), bad
    return np.stack(imgs), np.asarray(greys, bool), bad


def _folder_signature(folder: Path) -> str:
    """Hash of the tree's file names, sizes and times (the decoded-cache key); at most
    :data:`MAX_FOLDER_ENTRIES` entries, no symbolic links followed, unreadable parts
    skipped."""
    h = hashlib.sha1(str(folder.resolve()).encode())
    seen = 0
    for dirpath, dirnames, filenames in os.walk(folder, onerror=lambda e: None):
        dirnames.sort()
        seen += len(dirnames) + len(filenames)
        if seen > MAX_FOLDER_ENTRIES:
            raise DataError(f"{folder} holds more than {MAX_FOLDER_ENTRIES} files and folders; "
                            "choose a folder of images")
        for f in sorted(filenames):
            try:
                st = os.stat(os.path.join(dirpath, f), follow_symlinks=False)
            except OSError:
                continue
            # relative to the (resolved, hashed) root: the same folder spelled "../d" or
            # "/abs/d" must give the same key, not a second 185 MB cache file
            rel = os.path.relpath(os.path.join(dirpath, f), folder)
            h.update(f"{rel}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]


def check_folder_allowed(folder: Path) -> Path:
    """``folder`` resolved, if it lies inside one of :func:`ocvis.config.folder_roots`;
    otherwise a :class:`DataError` that does not say whether the folder exists."""
    try:
        real = folder.expanduser().resolve()
    except (OSError, RuntimeError) as exc:
        raise DataError(f"cannot resolve the folder path {str(folder)!r}: {exc}") from None
    roots = folder_roots()
    for root in roots:
        try:
            r = root.resolve()
        except (OSError, RuntimeError):
            continue
        if real == r or r in real.parents:
            return real
    raise DataError(f"{folder} is outside the folders this dashboard may read "
                    f"({', '.join(str(r) for r in roots)}); put the images there, upload a "
                    ".zip, or add the folder to OCVIS_FOLDER_ROOTS")


def load_image_folder(path: str | Path, name: str | None = None,
                      class_order: tuple[str, ...] | None = None,
                      use_cache: bool = True, check_roots: bool = True) -> ImageDataset:
    """Read an ``ImageFolder``-style tree of images of any size and mode.

    Layouts: ``path/{train,test}/<class>/*`` (its own split), ``path/<class>/*`` (a fixed,
    seeded, stratified split with 30 % test) or ``path/*`` (one class, named after the
    folder). Grey images stay grey when every image is grey; otherwise all become RGB.
    Unreadable files are skipped and counted (warning); an empty result is an error. The
    folder must lie inside :func:`ocvis.config.folder_roots` (``check_roots=False`` for
    the registry's own datasets).
    """
    folder = Path(path).expanduser()
    real = check_folder_allowed(folder) if check_roots else folder
    if not real.exists():
        raise DataError(f"folder {folder} does not exist")
    if not real.is_dir():
        raise DataError(f"{folder} is not a folder")
    folder = real
    name = name or f"folder:{folder}"
    cache_file = None
    if use_cache:
        cache_file = cache_root() / f"folder-{_folder_signature(folder)}.npz"
        if cache_file.exists():
            try:
                return _dataset_from_npz(cache_file, name)
            except Exception:  # noqa: BLE001 - a bad cache is rebuilt, never fatal
                log.warning("ignoring unreadable cache %s", cache_file)

    sub = {p.name for p in _class_dirs(folder)}
    if {"train", "test"} <= sub:
        tr_dirs = _class_dirs(folder / "train")
        te_dirs = _class_dirs(folder / "test")
        classes = _ordered_classes([d.name for d in tr_dirs] + [d.name for d in te_dirs],
                                   class_order)
        parts = {}
        skipped = 0
        greys = []
        for split, base in (("train", folder / "train"), ("test", folder / "test")):
            xs, ys = [], []
            for ci, c in enumerate(classes):
                d = base / c
                if not d.is_dir():
                    continue
                x, g, bad = _read_many(_list_images(d))
                skipped += len(bad)
                xs.append(x)
                greys.append(g)
                ys.append(np.full(len(x), ci, np.int64))
            parts[split] = (np.concatenate(xs) if xs else np.zeros((0, 32, 32, 3), np.uint8),
                            np.concatenate(ys) if ys else np.zeros(0, np.int64))
        grey_all = np.concatenate(greys) if greys else np.zeros(0, bool)
        (xtr, ytr), (xte, yte) = parts["train"], parts["test"]
    else:
        dirs = _class_dirs(folder)
        if dirs:
            classes = _ordered_classes([d.name for d in dirs], class_order)
            xs, ys, gs, skipped = [], [], [], 0
            for ci, c in enumerate(classes):
                x, g, bad = _read_many(_list_images(folder / c))
                skipped += len(bad)
                xs.append(x)
                gs.append(g)
                ys.append(np.full(len(x), ci, np.int64))
            x_all, y_all = np.concatenate(xs), np.concatenate(ys)
            grey_all = np.concatenate(gs)
        else:
            classes = (folder.name or "images",)
            x_all, grey_all, bad = _read_many(_list_images(folder))
            skipped = len(bad)
            y_all = np.zeros(len(x_all), np.int64)
        if len(x_all) == 0:
            xtr = xte = x_all
            ytr = yte = y_all
        else:
            xtr, ytr, xte, yte = _seeded_split(x_all, y_all, FOLDER_TEST_FRACTION)

    n_total = len(xtr) + len(xte)
    if n_total == 0:
        raise DataError(f"no readable images in {folder} (looked for "
                        f"{', '.join(IMAGE_EXTENSIONS)}; {skipped} files could not be read)")
    notes = []
    if skipped:
        msg = f"{skipped} unreadable or corrupt image file(s) in {folder} were skipped"
        warnings.warn(msg, OcvisWarning, stacklevel=2)
        notes.append(msg)
    if len(classes) < 2:
        msg = (f"{folder} holds a single class: every image is normal, so a test set has no "
               "abnormal samples and AUROC is undefined")
        warnings.warn(msg, OcvisWarning, stacklevel=2)
        notes.append(msg)
    grey = bool(len(grey_all)) and bool(grey_all.all())
    to_chw = (lambda a: np.ascontiguousarray(a[..., :1].transpose(0, 3, 1, 2))) if grey else \
        (lambda a: np.ascontiguousarray(a.transpose(0, 3, 1, 2)))
    ds = ImageDataset(name, tuple(classes), to_chw(xtr), ytr, to_chw(xte), yte,
                      source=str(folder), skipped=skipped, notes=tuple(notes))
    if cache_file is not None:
        try:
            _dataset_to_npz(cache_file, ds)
        except OSError as exc:
            log.warning("could not write cache %s: %s", cache_file, exc)
    _freeze(ds.x_train, ds.y_train, ds.x_test, ds.y_test)
    return ds


def _ordered_classes(names: list[str], order: tuple[str, ...] | None) -> tuple[str, ...]:
    uniq = sorted(set(names))
    if order:
        known = [c for c in order if c in uniq]
        return tuple(known + [c for c in uniq if c not in known])
    return tuple(uniq)


def _seeded_split(x: np.ndarray, y: np.ndarray, frac: float):
    rng = np.random.default_rng(0)
    te = np.zeros(len(y), bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        n_te = int(round(frac * len(idx))) if len(idx) > 1 else 0
        te[rng.choice(idx, size=n_te, replace=False)] = True
    return x[~te], y[~te], x[te], y[te]


def _dataset_to_npz(path: Path, ds: ImageDataset) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # a name of this process's own: two bench lanes may write the same cache at once
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test, y_test=ds.y_test,
             classes=np.asarray(ds.classes), skipped=ds.skipped, source=ds.source,
             notes=np.asarray(ds.notes, dtype=str))
    os.replace(tmp, path)


def _dataset_from_npz(path: Path, name: str) -> ImageDataset:
    with np.load(path, allow_pickle=False) as z:
        ds = ImageDataset(name, tuple(str(c) for c in z["classes"]), z["x_train"],
                          z["y_train"], z["x_test"], z["y_test"], source=str(z["source"]),
                          skipped=int(z["skipped"]), notes=tuple(str(n) for n in z["notes"]))
    _freeze(ds.x_train, ds.y_train, ds.x_test, ds.y_test)
    return ds


# ----------------------------------------------------------------------------- registry
DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo("digits", "Digits (scikit-learn, 8x8, bundled)", MNIST_CLASSES, 1,
                          lambda root: [], _load_digits, False),
    "mnist": DatasetInfo("mnist", "MNIST", MNIST_CLASSES, 1,
                         lambda root: _idx_files(root, "MNIST"),
                         lambda root, dl: _load_idx_dataset("mnist", "MNIST", MNIST_CLASSES,
                                                            "MNIST", root, dl), True),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist", "Fashion-MNIST", FASHION_CLASSES, 1,
        lambda root: _idx_files(root, "FashionMNIST"),
        lambda root, dl: _load_idx_dataset("fashion-mnist", "FashionMNIST", FASHION_CLASSES,
                                           "FashionMNIST", root, dl), True),
    "cifar10": DatasetInfo("cifar10", "CIFAR-10", CIFAR10_CLASSES, 3, _cifar_files,
                           _load_cifar10, True),
}
DEFAULT_DATASET = "digits"


def dataset_names() -> list[str]:
    return list(DATASETS)


def is_folder_name(name: str) -> bool:
    return name.startswith("folder:")


@lru_cache(maxsize=6)
def _load_cached(name: str, root: str, download: bool) -> ImageDataset:
    if is_folder_name(name):
        return load_image_folder(name[len("folder:"):], name=name)
    info = DATASETS[name]
    return info.loader(Path(root), download)


def load_dataset(name: str = DEFAULT_DATASET, root: str | Path | None = None,
                 download: bool = False) -> ImageDataset:
    """Load a registered dataset (or ``folder:<path>``) as uint8 ``N x C x 32 x 32`` arrays.

    Results are cached in memory (read-only arrays), so a second call is free.
    """
    if not isinstance(name, str) or not name:
        raise DataError("dataset name must be a non-empty string")
    if not is_folder_name(name) and name not in DATASETS:
        raise DataError(f"unknown dataset '{name}'. Known: {', '.join(DATASETS)} "
                        "or folder:<path>")
    root = data_root() if root is None else Path(root)
    if is_folder_name(name):  # checked on every call: the memory cache must not bypass it
        check_folder_allowed(Path(name[len("folder:"):]))
    return _load_cached(name, str(root), bool(download))


def describe_datasets(root: str | Path | None = None) -> list[dict]:
    """One row per registered dataset: name, title, classes, location, present."""
    root = data_root() if root is None else Path(root)
    rows = []
    for info in DATASETS.values():
        rows.append({"name": info.name, "title": info.title, "classes": len(info.classes),
                     "channels": info.channels,
                     "location": "bundled with scikit-learn" if info.name == "digits"
                     else str(info.location(root)),
                     "present": True if info.name == "digits" else info.present(root)})
    return rows
