"""Decoding real files: every mode radiographs come in, every kind of bad file, both policies."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from covidxr_core.data import DecodeTask, decode_task, load_dataset
from covidxr_core.errors import BadImageError, DataError

from .test_data_discover import FULL, make_tree, small_config, write_image

SIDE = 32


def decode(path: Path, channels: int = 1, side: int = SIDE) -> np.ndarray:
    result = decode_task(DecodeTask(str(path), path.name, side, channels))
    assert result.ok, (result.rule, result.value)
    assert result.pixels is not None and result.pixels.dtype == np.uint8
    assert result.pixels.shape == (side, side, channels)
    return result.pixels


def ramp(low: int, high: int, dtype: type = np.uint8) -> np.ndarray:
    """A SIDE x SIDE horizontal ramp from low to high (same size as the decode: no resize)."""
    row = np.linspace(low, high, SIDE)
    return np.rint(np.tile(row, (SIDE, 1))).astype(dtype)


def test_sixteen_bit_is_stretched_by_its_range_not_clipped(tmp_path: Path) -> None:
    values = ramp(1000, 4000, np.uint16)  # 12-bit detector data in a 16-bit file
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    pixels = decode(path)[..., 0]
    expected = np.rint((values.astype(float) - 1000) * 255.0 / 3000).astype(np.uint8)
    np.testing.assert_array_equal(pixels, expected)
    assert pixels.min() == 0 and pixels.max() == 255  # clipping would give 255 everywhere


def test_rgba_and_la_are_composited_on_black(tmp_path: Path) -> None:
    grey = ramp(40, 240)
    alpha = np.full((SIDE, SIDE), 255, np.uint8)
    alpha[:, : SIDE // 4] = 0
    alpha[:, SIDE // 4 : SIDE // 2] = 128
    rgba = np.dstack([grey, grey, grey, alpha])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    Image.fromarray(np.dstack([grey, alpha]), "LA").save(tmp_path / "la.png")
    for name in ("a.png", "la.png"):
        pixels = decode(tmp_path / name)[..., 0].astype(int)
        assert (pixels[:, : SIDE // 4] == 0).all()
        half = grey[:, SIDE // 4 : SIDE // 2].astype(int) * 128 / 255
        assert np.abs(pixels[:, SIDE // 4 : SIDE // 2] - half).max() <= 1
        np.testing.assert_array_equal(pixels[:, SIDE // 2 :], grey[:, SIDE // 2 :])
    rgb = decode(tmp_path / "a.png", channels=3)
    assert (rgb[:, : SIDE // 4] == 0).all()


def test_palette_png_gif_and_palette_transparency(tmp_path: Path) -> None:
    colour = np.dstack([ramp(0, 255), ramp(255, 0), np.full((SIDE, SIDE), 90, np.uint8)])
    palette = Image.fromarray(colour, "RGB").quantize(32)
    palette.save(tmp_path / "p.png")
    palette.save(tmp_path / "p.gif")
    for name in ("p.png", "p.gif"):
        assert Image.open(tmp_path / name).mode == "P"
        expected = np.asarray(Image.open(tmp_path / name).convert("RGB"))
        np.testing.assert_array_equal(decode(tmp_path / name, channels=3), expected)
    see_through = palette.copy()
    see_through.info["transparency"] = int(np.asarray(palette)[0, 0])
    see_through.save(tmp_path / "t.png", transparency=see_through.info["transparency"])
    assert decode(tmp_path / "t.png")[0, 0, 0] == 0  # the transparent index became black


def test_cmyk_jpeg_and_bilevel(tmp_path: Path) -> None:
    cmyk = Image.fromarray(
        np.dstack([ramp(0, 200)] * 3 + [np.full((SIDE, SIDE), 30, np.uint8)]), "CMYK"
    )
    cmyk.save(tmp_path / "c.jpg", quality=95)
    reopened = Image.open(tmp_path / "c.jpg")
    assert reopened.mode == "CMYK"
    expected = np.asarray(reopened.convert("RGB").convert("L"), dtype=int)
    assert np.abs(decode(tmp_path / "c.jpg")[..., 0].astype(int) - expected).max() <= 1
    Image.fromarray(ramp(0, 255) > 128).save(tmp_path / "b.png")
    assert set(np.unique(decode(tmp_path / "b.png"))) == {0, 255}


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    pixels = np.zeros((SIDE, 2 * SIDE), np.uint8)  # wide; bright block top-left as stored
    pixels[:8, :8] = 255
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    image.save(tmp_path / "o.jpg", exif=exif, quality=95)
    decoded = decode(tmp_path / "o.jpg")[..., 0]
    assert decoded[:3, -6:].mean() > 200  # the block is now top-right (and squashed to 4 rows)
    assert decoded[:3, :6].mean() < 50


def test_greyscale_and_rgb_jpeg_draft_decode(tmp_path: Path) -> None:
    path = write_image(tmp_path / "big.jpg", seed=5, size=(1600, 1200), quality=90)
    grey, rgb = decode(path, 1, 64), decode(path, 3, 64)
    reference = np.asarray(
        Image.open(path).convert("L").resize((64, 64), Image.Resampling.BILINEAR), dtype=int
    )
    assert np.abs(grey[..., 0].astype(int) - reference).mean() < 3  # draft scale ~ full decode
    assert np.abs(rgb.astype(int).mean(axis=-1) - grey[..., 0]).mean() < 3


def test_real_fixture_images_all_decode(cxr_fixture: Path) -> None:
    files = sorted(p for p in cxr_fixture.rglob("*") if p.is_file())
    assert len(files) == 20
    modes = {Image.open(p).mode for p in files}
    assert modes == {"L", "RGB", "RGBA"}
    for channels in (1, 3):
        for path in files:
            pixels = decode(path, channels, 64)
            assert pixels.std() > 10  # a radiograph, not a blank


BAD_FILES = {
    "zero.png": (b"", "empty file"),
    "random.png": (
        bytes(np.random.default_rng(1).integers(0, 256, 300, dtype=np.uint8)),
        "not an image Pillow can identify",
    ),
    "text.jpg": (b"This is a note, not an image.\n", "not an image Pillow can identify"),
}


def bad_tree(tmp_path: Path) -> Path:
    root = make_tree(tmp_path / "data", FULL)
    for name, (content, _) in BAD_FILES.items():
        (root / "train" / "corona" / name).write_bytes(content)
    good = io.BytesIO()
    Image.fromarray(ramp(0, 255)).resize((200, 200)).save(good, "JPEG", quality=90)
    (root / "train" / "normal" / "cut.jpg").write_bytes(
        good.getvalue()[: len(good.getvalue()) // 2]
    )
    return root


def test_bad_files_are_skipped_and_listed_with_their_rule(tmp_path: Path) -> None:
    dataset = load_dataset(bad_tree(tmp_path), small_config(tmp_path))
    reasons = dict(dataset.skipped)
    for name, (_, rule) in BAD_FILES.items():
        assert reasons[f"train/corona/{name}"].startswith(rule)
    assert reasons["train/normal/cut.jpg"].startswith("truncated or corrupt image data")
    assert dataset.counts()["train"] == {"corona": 6, "normal": 6}  # every good image kept
    assert any(n.startswith("skipped 4 bad image files") for n in dataset.notes)


def test_error_policy_names_the_file_and_keeps_the_decoded_work(tmp_path: Path) -> None:
    root = bad_tree(tmp_path)
    with pytest.raises(BadImageError) as caught:
        load_dataset(root, small_config(tmp_path, on_bad_image="error"))
    error = caught.value
    assert error.path == str(root / "train/corona/random.png")  # first bad file by path
    assert error.rule == "not an image Pillow can identify"
    assert "300 bytes; and 3 more bad files" in str(error)
    again = load_dataset(root, small_config(tmp_path, on_bad_image="skip"))
    assert again.cache_hit  # the good images were cached before raising


def test_decompression_bombs_under_both_policies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_tree(tmp_path / "data", FULL)
    write_image(root / "train" / "corona" / "warn.png", seed=11, size=(60, 60))  # 1.44x the limit
    write_image(root / "train" / "corona" / "huge.png", seed=12, size=(100, 100))  # > 2x
    # Pillow's own check with a small limit; the tree's 48x40 images stay below it.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2500)
    dataset = load_dataset(root, small_config(tmp_path, image_size=16))
    reasons = dict(dataset.skipped)
    for name in ("warn.png", "huge.png"):
        assert reasons[f"train/corona/{name}"].startswith("decompression bomb")
    assert dataset.counts()["train"]["corona"] == 6
    with pytest.raises(BadImageError, match="decompression bomb"):
        load_dataset(root, small_config(tmp_path, image_size=16, on_bad_image="error"))


def test_a_class_emptied_by_skipping_is_a_data_error(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "data", FULL)
    for path in (root / "test" / "normal").glob("*.png"):
        path.write_bytes(b"broken")
    with pytest.raises(
        DataError, match=r"test/normal: no decodable image left for split 'test'"
    ) as caught:
        load_dataset(root, small_config(tmp_path))
    # Each skipped file is named with its reason, as in the note when the split survives.
    broken = sorted(p.name for p in (root / "test" / "normal").glob("*.png"))[:3]
    assert "skipped" in str(caught.value)
    for name in broken:
        assert f"test/normal/{name} (not an image Pillow can identify)" in str(caught.value)


def test_unreadable_or_vanished_file_is_a_bad_image(tmp_path: Path) -> None:
    result = decode_task(DecodeTask(str(tmp_path / "gone.png"), "gone.png", SIDE, 1))
    assert result.rule == "cannot read file" and result.value


def test_decode_threads_leave_global_state_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Decoding runs in threads of this process: decode_task must neither set Pillow's
    # limit nor touch the warnings filters (warnings.catch_warnings in several threads
    # at once can leave a filter installed for good), yet still flag every bomb.
    root = make_tree(tmp_path / "data", FULL)
    for i in range(8):
        write_image(root / "train" / "corona" / f"warn-{i}.png", seed=20 + i, size=(60, 60))
        write_image(root / "train" / "normal" / f"huge-{i}.png", seed=40 + i, size=(100, 100))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2500)
    filters = list(warnings.filters)
    dataset = load_dataset(root, small_config(tmp_path, image_size=16, workers=4))
    assert warnings.filters == filters
    assert Image.MAX_IMAGE_PIXELS == 2500
    bombs = [rel for rel, why in dataset.skipped if why.startswith("decompression bomb")]
    assert len(bombs) == 16
    assert dataset.counts()["train"] == {"corona": 6, "normal": 6}
