"""`python -m covidxr_core.predict` and Grad-CAM on the model a real tiny study exported."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from covidxr_core.predict import decode_files, load_classifier, main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_path(tiny_run: Path) -> Path:
    """best/model.keras of the session's real tiny study on the synthetic demo data."""
    return tiny_run / "best" / "model.keras"


@pytest.fixture(scope="module")
def fixture_images(cxr_fixture: Path) -> list[str]:
    """The 20 real radiographs: greyscale and RGB JPEGs and an RGBA PNG, 255 to 2200 px."""
    files = sorted(str(p) for p in cxr_fixture.glob("validation/*/*") if p.is_file())
    assert len(files) == 20
    return files


@pytest.fixture(scope="module")
def class_names(model_path: Path) -> list[str]:
    return list(load_classifier(model_path)[1]["class_names"])


def _predict_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "covidxr_core.predict", *args],
        capture_output=True, text=True, cwd=REPO, timeout=300,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_json_for_every_fixture_image(model_path, fixture_images, class_names, capsys) -> None:
    assert main(["--model", str(model_path), "--json", *fixture_images]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["file"] for r in results] == fixture_images
    for result in results:
        probs = result["probabilities"]
        assert list(probs) == class_names
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert all(0.0 <= p <= 1.0 for p in probs.values())
        # The class is decided by the threshold the model carries, chosen on validation
        # when it was trained: the positive class when its probability reaches it.
        threshold = result["threshold"]
        assert threshold is not None and 0.0 <= threshold <= 1.0
        expected = "corona" if probs["corona"] >= threshold else "normal"
        assert result["predicted_class"] == expected


def test_bad_images_are_named_and_the_good_ones_still_print(
    model_path, fixture_images, tmp_path, capsys
) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("this is a text file, not a PNG\n")
    good = fixture_images[:2]
    status = main(["--model", str(model_path), "--json", good[0], str(empty), str(text), good[1]])
    out, err = capsys.readouterr()
    assert status == 1
    assert [r["file"] for r in json.loads(out)] == good  # stdout stays valid JSON
    err = " ".join(err.split())  # rich may wrap long lines
    assert f"{empty}: empty file (got '0 bytes')" in err
    assert f"{text}: not an image Pillow can identify" in err


def test_table_output_names_classes_and_files(
    model_path, fixture_images, class_names, capsys
) -> None:
    rgba = next(f for f in fixture_images if f.endswith(".png"))
    assert main(["--model", str(model_path), rgba]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for name in class_names:
        assert f"P({name})" in out
    assert "64 px, 1 channel(s)" in out  # the settings the model carries
    assert Path(rgba).name in out


def test_gradcam_writes_one_overlay_per_image(model_path, fixture_images, tmp_path, capsys) -> None:
    picks = [fixture_images[0], fixture_images[2], fixture_images[-1]]
    out_dir = tmp_path / "cams"
    assert main(["--model", str(model_path), "--gradcam", str(out_dir), *picks]) == 0
    written = sorted(out_dir.glob("*.gradcam.png"))
    assert [p.name for p in written] == sorted(f"{Path(f).stem}.gradcam.png" for f in picks)
    for path in written:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.mode == "RGB"
            assert image.size == (256, 256)


def test_overlay_colours_only_where_the_map_is_hot() -> None:
    # A Grad-CAM map may be blank for a barely trained model, so the colouring is checked
    # on a known map: hot top-left quarter, cold elsewhere.
    from covidxr_core.gradcam import overlay

    image = np.full((64, 64, 1), 128, dtype=np.uint8)
    heat = np.zeros((4, 4), dtype=np.float32)
    heat[0, 0] = 1.0
    out = overlay(image, heat, size=256).astype(np.int16)
    assert out.shape == (256, 256, 3)
    hot, cold = out[:16, :16], out[-64:, -64:]
    assert (np.abs(hot[..., 0] - hot[..., 2]) > 40).all()  # coloured
    assert (cold == 128).all()  # the plain radiograph shows through


def test_a_missing_model_is_one_error_line(tmp_path) -> None:
    done = _predict_cli("--model", str(tmp_path / "nope.keras"), "x.png")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"--model {tmp_path / 'nope.keras'}: no such file" in " ".join(done.stderr.split())


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_gradcam_agrees_between_tensorflow_and_jax(model_path, fixture_images, tmp_path) -> None:
    # The same saved model on both backends: the two autodiff paths must give one map.
    from covidxr_core.gradcam import gradcam

    picks = fixture_images[:4]
    script = (
        "import sys, numpy as np\n"
        "from covidxr_core.predict import load_classifier, decode_files\n"
        "from covidxr_core.gradcam import gradcam\n"
        "model, meta = load_classifier(sys.argv[1])\n"
        "images, _, _ = decode_files(sys.argv[3:], meta['image_size'], meta['channels'])\n"
        "np.save(sys.argv[2], gradcam(model, images)[0])\n"
    )
    out = tmp_path / "jax.npy"
    done = subprocess.run(
        [sys.executable, "-c", script, str(model_path), str(out), *picks],
        capture_output=True, text=True, cwd=REPO, timeout=300,
        env={**os.environ, "KERAS_BACKEND": "jax"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    model, meta = load_classifier(model_path)
    images, _, _ = decode_files(picks, meta["image_size"], meta["channels"])
    heat_tf, _ = gradcam(model, images)
    heat_jax = np.load(out)
    assert heat_tf.shape == heat_jax.shape == (4, 2, 2)  # conv6 of a 64 px model
    assert heat_tf.min() >= 0.0 and heat_tf.max() <= 1.0
    np.testing.assert_allclose(heat_tf, heat_jax, atol=1e-3)
