"""Datasets and protocols: sizes, value ranges, label balance, determinism, bad input."""
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import needs_shared
from ocvis.data import (DATASETS, OcvisWarning, SCENARIOS, load_dataset, load_image_folder,
                        make_task)
from ocvis.errors import DataError


def _check_task(task, channels):
    for x in (task.x_train, task.x_test):
        assert x.dtype == torch.float32
        assert x.shape[1:] == (channels, 32, 32)
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert len(task.y_test) == len(task.x_test) == len(task.val_mask)
    assert set(np.unique(task.y_test)) <= {0, 1}


def _same(a, b):
    assert a.name == b.name
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.x_test, b.x_test)
    assert np.array_equal(a.y_test, b.y_test) and np.array_equal(a.val_mask, b.val_mask)


def test_digits_one_class():
    t = make_task("digits", "one-class", 3, seed=0)
    _check_task(t, 1)
    ds = load_dataset("digits")
    assert len(t.x_train) == int((ds.y_train == 3).sum())
    assert (t.train_classes == 3).all()
    # label 1 = abnormal = every test class but 3
    assert np.array_equal(t.y_test, (ds.y_test != 3).astype(int))
    # validation part: 20 % of each label, seeded
    for lab in (0, 1):
        n = (t.y_test == lab).sum()
        assert t.val_mask[t.y_test == lab].sum() == round(0.2 * n)
    _same(t, make_task("digits", "one-class", 3, seed=0))
    assert not np.array_equal(t.val_mask, make_task("digits", "one-class", 3, seed=1).val_mask)


def test_digits_upscaled_and_split_fixed():
    ds = load_dataset("digits")
    assert ds.x_train.shape[1:] == (1, 32, 32) and ds.x_train.dtype == np.uint8
    assert len(ds.x_train) + len(ds.x_test) == 1797
    assert abs(len(ds.x_test) / 1797 - 0.3) < 0.01
    assert not ds.x_train.flags.writeable  # cached arrays are protected


def test_multi_class_normal_and_names():
    t = make_task("digits", "one-class", ["1", 7])
    assert t.normal_classes == (1, 7)
    assert set(np.unique(t.train_classes)) == {1, 7}


def test_latent_multiclass_digits():
    t = make_task("digits", "latent-multiclass", "CUR")
    assert t.normal_classes == SCENARIOS["digits"]["CUR"]
    assert set(np.unique(t.train_classes)) == {0, 3, 8}
    assert np.array_equal(t.y_test, (~np.isin(t.test_classes, [0, 3, 8])).astype(int))


def _sorted_dataset(sizes=(10, 10, 5)):
    """A dataset stored class by class, as an image folder or the CIFAR-10 JPEG copy is."""
    from ocvis.data import ImageDataset

    y = np.repeat(np.arange(len(sizes)), sizes)
    x = np.arange(len(y), dtype=np.uint8)[:, None, None, None] * np.ones((1, 1, 32, 32),
                                                                          np.uint8)
    return ImageDataset("sorted", tuple(f"c{i}" for i in range(len(sizes))), x, y, x.copy(),
                        y.copy(), source="test")


@pytest.mark.filterwarnings("ignore:the test set holds only normal")
def test_first_n_train_shared_among_normal_classes():
    """n_train of several normal classes stored one class after the other: every class
    gives its share (proportional, largest remainder), its first images, not the first
    class all of them (session 22: CIFAR-10 THG trained on airplanes only)."""
    from ocvis.data.protocols import first_per_class, latent_multiclass, one_class

    ds = _sorted_dataset((10, 10, 5))
    t = one_class(ds, [0, 1, 2], n_train=10)
    assert np.bincount(t.train_classes).tolist() == [4, 4, 2]
    # each class's first images, in the dataset's order
    assert t.x_train[:, 0, 0, 0].mul(255).round().int().tolist() == [0, 1, 2, 3, 10, 11, 12,
                                                                        13, 20, 21]
    # largest remainder: 7 of (10, 10, 5) -> exact 2.8, 2.8, 1.4 -> 3, 3, 1
    assert np.bincount(latent_multiclass(ds, [0, 1, 2], n_train=7).train_classes).tolist() \
        == [3, 3, 1]
    # one class: the first n_train, as before
    idx = np.flatnonzero(ds.y_train == 1)
    assert np.array_equal(first_per_class(ds.y_train, idx, 6), idx[:6])
    with pytest.warns(OcvisWarning, match="has only"):
        assert len(one_class(ds, [0, 1, 2], n_train=100).x_train) == 25


@pytest.mark.parametrize("ratio", [5.0, 10.0, 25.0])
def test_unsupervised_digits(ratio):
    t = make_task("digits", "unsupervised", 4, ratio=ratio, seed=2)
    _check_task(t, 1)
    assert t.transductive and t.x_train is t.x_test
    frac = t.y_test.mean()
    assert abs(frac - ratio / 100) < 0.01
    assert np.array_equal(t.y_train_hidden, t.y_test)
    ds = load_dataset("digits")
    assert (t.y_test == 0).sum() == (ds.y_train == 4).sum() + (ds.y_test == 4).sum()
    _same(t, make_task("digits", "unsupervised", 4, ratio=ratio, seed=2))


@pytest.mark.parametrize("bad, match", [
    (dict(dataset="nope"), "unknown dataset"),
    (dict(normal=12), "out of range"),
    (dict(normal="zebra"), "unknown class"),
    (dict(protocol="semi"), "unknown protocol"),
    (dict(protocol="unsupervised", ratio=60.0), "outlier ratio"),
    (dict(protocol="latent-multiclass", normal="XYZ"), "unknown scenario"),
    (dict(normal=[]), "at least one"),
])
def test_bad_arguments(bad, match):
    kw = dict(dataset="digits", protocol="one-class", normal=0) | bad
    with pytest.raises(DataError, match=match):
        make_task(kw.pop("dataset"), kw.pop("protocol"), kw.pop("normal"), **kw)


def test_too_few_normal_samples_warns():
    with pytest.warns(OcvisWarning, match="has only"):
        t = make_task("digits", "one-class", 0, n_train=4000)
    assert len(t.x_train) < 4000


def test_missing_files_say_where(tmp_path):
    with pytest.raises(DataError, match=r"MNIST.raw.*download=True"):
        load_dataset("mnist", root=tmp_path)
    assert not DATASETS["cifar10"].present(tmp_path)


def _write_imgs(folder, n, size=(40, 30), mode="RGB", seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(
            folder / f"{i}.png")


def test_folder_dataset_any_size_and_corrupt(tmp_path):
    _write_imgs(tmp_path / "cats", 10, (50, 20))
    _write_imgs(tmp_path / "dogs", 10, (16, 16), mode="L")
    (tmp_path / "dogs" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    (tmp_path / "dogs" / "notes.txt").write_text("ignored: not an image")
    with pytest.warns(OcvisWarning, match="1 unreadable"):
        ds = load_image_folder(tmp_path, use_cache=False)
    assert ds.classes == ("cats", "dogs") and ds.skipped == 1
    assert ds.x_train.shape[1:] == (3, 32, 32)  # mixed grey + RGB -> RGB
    assert len(ds.x_train) + len(ds.x_test) == 20
    t = make_task(f"folder:{tmp_path}", "one-class", "cats")
    _check_task(t, 3)


def test_folder_grey_stays_grey_and_train_test_layout(tmp_path):
    for split in ("train", "test"):
        _write_imgs(tmp_path / split / "a", 4, mode="L")
        _write_imgs(tmp_path / split / "b", 3, mode="L", seed=1)
    ds = load_image_folder(tmp_path, use_cache=False)
    assert ds.x_train.shape == (7, 1, 32, 32) and ds.x_test.shape == (7, 1, 32, 32)


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_image_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no readable images"):
        load_image_folder(tmp_path / "empty")
    bad = tmp_path / "bad" / "x"
    bad.mkdir(parents=True)
    (bad / "a.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="no readable images"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_image_folder(tmp_path / "bad", use_cache=False)


def test_single_class_folder_warns(tmp_path):
    _write_imgs(tmp_path / "only", 6)
    with pytest.warns(OcvisWarning, match="single class"):
        ds = load_image_folder(tmp_path / "only", use_cache=False)
    assert ds.classes == ("only",)


def test_folder_cache_roundtrip(tmp_path):
    _write_imgs(tmp_path / "a", 5)
    _write_imgs(tmp_path / "b", 5, seed=3)
    a = load_image_folder(tmp_path)
    b = load_image_folder(tmp_path)  # from the npz cache
    assert np.array_equal(a.x_train, b.x_train) and a.classes == b.classes


# --------------------------------------------------------------- the real dataset copies
@needs_shared
@pytest.mark.parametrize("name, channels", [("mnist", 1), ("fashion-mnist", 1)])
def test_idx_datasets(name, channels):
    ds = load_dataset(name)
    assert ds.x_train.shape == (60000, channels, 32, 32)
    assert ds.x_test.shape == (10000, channels, 32, 32)
    # zero padding of 28 x 28 -> 32 x 32
    assert ds.x_train[:, :, :2].max() == 0 and ds.x_train[:, :, :, -2:].max() == 0
    assert np.bincount(ds.y_test).tolist() == (
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009] if name == "mnist"
        else [1000] * 10)
    t = make_task(name, "one-class", 3, n_train=4000)
    _check_task(t, channels)
    assert len(t.x_train) == 4000 and (t.train_classes == 3).all()
    assert (t.y_test == 0).sum() == (ds.y_test == 3).sum()
    # the first 4000 training images of the class, in file order
    idx = np.flatnonzero(ds.y_train == 3)[:4000]
    assert torch.equal(t.x_train, torch.from_numpy(ds.x_train[idx].astype(np.float32) / 255))
    _same(t, make_task(name, "one-class", 3, n_train=4000))


@needs_shared
def test_mnist_protocols():
    t = make_task("mnist", "latent-multiclass", "MIX")
    assert set(np.unique(t.train_classes)) == {2, 5, 6, 9}
    u = make_task("mnist", "unsupervised", 1, ratio=20.0, seed=0)
    assert abs(u.y_test.mean() - 0.2) < 0.001
    assert (u.y_test == 0).sum() == 6742 + 1135


@needs_shared
def test_cifar10_jpeg():
    ds = load_dataset("cifar10")
    assert ds.x_train.shape == (50000, 3, 32, 32) and ds.x_test.shape == (10000, 3, 32, 32)
    assert np.bincount(ds.y_train).tolist() == [5000] * 10
    assert ds.classes[0] == "airplane" and ds.classes[-1] == "truck"
    t = make_task("cifar10", "one-class", "cat", n_train=4000)
    _check_task(t, 3)
    assert t.normal_classes == (3,) and (t.y_test == 0).sum() == 1000
    lt = make_task("cifar10", "latent-multiclass", "LIV")
    assert (lt.y_test == 0).sum() == 6000


def test_single_label_test_set_warns(tmp_path):
    from PIL import Image

    for c in ("a", "b"):
        (tmp_path / "train" / c).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (8, 8), 40 * i).save(tmp_path / "train" / c / f"{i}.png")
    (tmp_path / "test" / "a").mkdir(parents=True)
    Image.new("L", (8, 8), 7).save(tmp_path / "test" / "a" / "0.png")
    with pytest.warns(OcvisWarning, match="only normal"):
        t = make_task(f"folder:{tmp_path}", "one-class", "a")
    assert any("undefined" in n for n in t.notes)
