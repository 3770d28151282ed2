"""ONNX and SavedModel exports of a real tiny study's best model, checked with onnxruntime
and ``tf.saved_model.load`` on the 20 real fixture radiographs, and predict on ONNX."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from covidxr_core.export import METADATA_KEY, OnnxClassifier, export_metadata
from covidxr_core.predict import decode_files, load_classifier, main

REPO = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def best_dir(tiny_run: Path) -> Path:
    return tiny_run / "best"


@pytest.fixture(scope="module")
def fixture_images(cxr_fixture: Path) -> list[str]:
    files = sorted(str(p) for p in cxr_fixture.glob("validation/*/*") if p.is_file())
    assert len(files) == 20
    return files


@pytest.fixture(scope="module")
def keras_side(best_dir: Path, fixture_images: list[str]):
    """The .keras model's probabilities on the decoded fixture, and its metadata."""
    model, metadata = load_classifier(best_dir / "model.keras")
    images, good, problems = decode_files(
        fixture_images, metadata["image_size"], metadata["channels"]
    )
    assert not problems and len(good) == 20
    probs = np.asarray(model.predict(images, verbose=0))
    return images, probs, export_metadata(model)


def test_a_study_writes_both_exports(best_dir: Path) -> None:
    assert (best_dir / "model.onnx").is_file()
    assert (best_dir / "saved_model" / "saved_model.pb").is_file()
    assert (best_dir / "saved_model" / "assets" / f"{METADATA_KEY}.json").is_file()


def test_onnx_matches_keras_within_1e_5(best_dir: Path, keras_side) -> None:
    import onnxruntime

    images, probs, metadata = keras_side
    session = onnxruntime.InferenceSession(str(best_dir / "model.onnx"))
    (inp,) = session.get_inputs()
    assert (inp.name, inp.type) == ("image", "tensor(uint8)")
    assert inp.shape[1:] == [metadata["image_size"], metadata["image_size"], metadata["channels"]]
    assert [o.name for o in session.get_outputs()] == ["probabilities"]
    out = session.run(None, {"image": images})[0]
    assert out.shape == probs.shape
    assert float(np.abs(out - probs).max()) < TOLERANCE
    carried = json.loads(session.get_modelmeta().custom_metadata_map[METADATA_KEY])
    assert carried == json.loads(json.dumps(metadata))
    for key in ("class_names", "positive_class", "image_size", "channels", "threshold"):
        assert key in carried
    assert OnnxClassifier(best_dir / "model.onnx").metadata == carried


def test_saved_model_matches_keras_within_1e_5(best_dir: Path, keras_side) -> None:
    import tensorflow as tf

    images, probs, metadata = keras_side
    loaded = tf.saved_model.load(str(best_dir / "saved_model"))
    out = loaded.serve(tf.constant(images))["probabilities"].numpy()
    assert float(np.abs(out - probs).max()) < TOLERANCE
    serving = loaded.signatures["serving_default"]
    served = serving(image=tf.constant(images))["probabilities"].numpy()
    assert float(np.abs(served - probs).max()) < TOLERANCE
    expected = json.loads(json.dumps(metadata))
    assert json.loads(loaded.metadata().numpy().decode()) == expected
    asset = best_dir / "saved_model" / "assets" / f"{METADATA_KEY}.json"
    assert json.loads(asset.read_text()) == expected


def test_saved_model_loads_without_covidxr(best_dir: Path, fixture_images, keras_side) -> None:
    """A fresh process that imports only TensorFlow (and never covidxr) serves the model."""
    images, probs, _ = keras_side
    npy = best_dir.parent / "fixture-images.npy"
    np.save(npy, images)
    code = (
        "import sys, json, numpy as np, tensorflow as tf\n"
        f"m = tf.saved_model.load({str(best_dir / 'saved_model')!r})\n"
        f"p = m.serve(tf.constant(np.load({str(npy)!r})))['probabilities'].numpy()\n"
        "assert not [k for k in sys.modules if k.startswith('covidxr')]\n"
        "print(json.dumps(p.tolist()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=300,
        env={**os.environ, "PYTHONPATH": ""},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = np.array(json.loads(done.stdout.strip().splitlines()[-1]))
    assert float(np.abs(out - probs).max()) < TOLERANCE


def test_predict_with_onnx_imports_no_tensorflow(best_dir: Path, fixture_images) -> None:
    code = (
        "import sys, json\n"
        "from covidxr_core.predict import main\n"
        f"status = main(['--model', {str(best_dir / 'model.onnx')!r}, '--json', *{fixture_images!r}])\n"
        "loaded = [k for k in ('tensorflow', 'keras', 'jax') if k in sys.modules]\n"
        "print('LOADED', json.dumps(loaded))\n"
        "sys.exit(status)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    body, _, tail = done.stdout.rpartition("LOADED ")
    assert json.loads(tail) == []
    onnx_results = json.loads(body)
    assert [r["file"] for r in onnx_results] == fixture_images


def test_predict_onnx_and_keras_agree(best_dir: Path, fixture_images, capsys) -> None:
    assert main(["--model", str(best_dir / "model.keras"), "--json", *fixture_images]) == 0
    via_keras = json.loads(capsys.readouterr().out)
    assert main(["--model", str(best_dir / "model.onnx"), "--json", *fixture_images]) == 0
    via_onnx = json.loads(capsys.readouterr().out)
    for a, b in zip(via_keras, via_onnx, strict=True):
        assert a["file"] == b["file"]
        assert a["predicted_class"] == b["predicted_class"]
        assert a["threshold"] == b["threshold"]
        for name, p in a["probabilities"].items():
            assert b["probabilities"][name] == pytest.approx(p, abs=TOLERANCE)


def test_gradcam_with_onnx_is_refused(best_dir: Path, fixture_images, tmp_path, capsys) -> None:
    args = ["--model", str(best_dir / "model.onnx"), "--gradcam", str(tmp_path), fixture_images[0]]
    assert main(args) == 2
    assert "--gradcam needs the model.keras" in capsys.readouterr().err


def test_a_file_that_is_not_onnx_is_named(tmp_path: Path, capsys) -> None:
    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"not a protobuf")
    assert main(["--model", str(fake), str(fake)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"model path {fake}: cannot be loaded as an ONNX model" in err


def test_without_onnx_the_saved_model_is_still_written(best_dir: Path, tmp_path, monkeypatch):
    """`pip install covidxr` alone: no onnx package, so model.onnx is skipped, named."""
    from covidxr_core.export import export_all

    model, _ = load_classifier(best_dir / "model.keras")
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` raises ImportError
    exported = export_all(model, tmp_path)
    assert sorted(exported.files) == ["saved_model"]
    assert exported.skipped == {
        "onnx": "ONNX export needs the onnx package: pip install 'covidxr[onnx]'"
    }
