"""The deployable exports of a finished run against its .keras model, on real images.

    python benchmarks/exports.py runs/NAME --images DIR [--json OUT]

Decodes every image under DIR (as predict does), then reports:
  1. ``max_abs_diff_onnx`` / ``max_abs_diff_saved_model``: the largest difference of any
     class probability between best/model.onnx (onnxruntime) or best/saved_model
     (``tf.saved_model.load``) and best/model.keras (Keras), over all images;
  2. ``export_s``: the wall time of `covidxr_core.export.export_model_file` (both formats)
     from best/model.keras into a temporary folder, as the study runs it;
  3. ``predict_onnx_s`` / ``predict_keras_s``: the wall time of
     ``python -m covidxr_core.predict --json`` over the images in a fresh process, and
     whether the ONNX one imported TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _predict_s(model: Path, images: list[str]) -> tuple[float, bool]:
    code = (
        "import sys; from covidxr_core.predict import main; import io, contextlib\n"
        "with contextlib.redirect_stdout(io.StringIO()): s = main(sys.argv[1:])\n"
        "print('TF' if 'tensorflow' in sys.modules else 'noTF'); sys.exit(s)\n"
    )
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, "--model", str(model), "--json", *images],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return time.perf_counter() - start, done.stdout.strip().splitlines()[-1] == "TF"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    best = args.run / "best"
    images = sorted(str(p) for p in args.images.rglob("*") if p.is_file())

    import onnxruntime
    import tensorflow as tf

    from covidxr_core.export import export_model_file
    from covidxr_core.predict import decode_files, load_classifier

    model, meta = load_classifier(best / "model.keras")
    pixels, good, _ = decode_files(images, meta["image_size"], meta["channels"])
    reference = np.asarray(model.predict(pixels, verbose=0))
    session = onnxruntime.InferenceSession(str(best / "model.onnx"))
    onnx_out = session.run(None, {"image": pixels})[0]
    saved = tf.saved_model.load(str(best / "saved_model"))
    saved_out = saved.serve(tf.constant(pixels))["probabilities"].numpy()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        exported = export_model_file(best / "model.keras", tmp)
        export_s = time.perf_counter() - start
    onnx_s, onnx_tf = _predict_s(best / "model.onnx", good)
    keras_s, _ = _predict_s(best / "model.keras", good)
    result = {
        "images": len(good),
        "max_abs_diff_onnx": float(np.abs(onnx_out - reference).max()),
        "max_abs_diff_saved_model": float(np.abs(saved_out - reference).max()),
        "export_s": round(export_s, 2),
        "exported": sorted(exported.files),
        "skipped": exported.skipped,
        "predict_onnx_s": round(onnx_s, 2),
        "predict_onnx_imported_tensorflow": onnx_tf,
        "predict_keras_s": round(keras_s, 2),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
