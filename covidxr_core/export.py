"""Deployable copies of a covidxr model: ONNX and a TensorFlow SavedModel, each self-describing.

A ``.keras`` file needs this package to load (its ``CXRInput`` and ``AffineAugment``
layers are ours). The two exports here do not:

``model.onnx``
    Written by Keras 3's own ``Model.export(format="onnx")``, which on the TensorFlow
    backend converts the inference graph with ``tf2onnx`` (``pip install
    'covidxr[onnx]'``). Input ``image``: ``uint8 (N, size, size, channels)``; output
    ``probabilities``: ``float32 (N, classes)``. The metadata is in the model's
    ``metadata_props`` under the key ``covidxr`` (JSON), which onnxruntime reads as
    ``session.get_modelmeta().custom_metadata_map["covidxr"]``.

``saved_model/``
    Written by Keras's ``ExportArchive`` (what ``export(format="tf_saved_model")``
    uses), TensorFlow only. Its ``serving_default`` signature takes ``image`` (uint8)
    and returns ``{"probabilities": float32}``; ``tf.saved_model.load(dir).serve(x)``
    does the same, and TF Serving serves it as it is. The metadata is a second
    endpoint, ``metadata()``, returning the JSON string, and the file
    ``saved_model/assets/covidxr.json``.

The metadata (`export_metadata`): ``class_names``, ``positive_class``,
``positive_index``, ``image_size``, ``channels``, the input's and output's names and
dtypes, and the decision: ``threshold`` on P(positive class) with its
``operating_point`` (chosen on validation when the model was trained; null means argmax)
and the fitted ``temperature`` (not applied inside the graph: the outputs are the
model's own probabilities, as from the ``.keras`` file). Inputs are decoded exactly as
for training (`covidxr_core.predict.decode_files`); rescaling to [0, 1] is inside each
exported graph, augmentation is not (inference only).

`OnnxClassifier` runs a ``model.onnx`` with onnxruntime and imports neither TensorFlow
nor Keras, which is how ``python -m covidxr_core.predict --model model.onnx`` works.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from covidxr_core.errors import ConfigError, CovidxrError

if TYPE_CHECKING:
    import keras

METADATA_KEY = "covidxr"  # ONNX metadata_props key, SavedModel asset name
METADATA_VERSION = 1
ONNX_FILE = "model.onnx"
SAVED_MODEL_DIR = "saved_model"
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
ONNX_INSTALL = "pip install 'covidxr[onnx]'"


class ExportUnavailable(CovidxrError):
    """A format cannot be written here (a library is missing); the message says what to install."""


def export_metadata(model: keras.Model) -> dict[str, Any]:
    """What a served model needs to be used correctly, as JSON-ready data: what
    `covidxr_core.model.model_metadata` reads from the model (the decision threshold
    included), plus the input and output tensors."""
    from covidxr_core import __version__
    from covidxr_core.model import model_metadata

    meta = model_metadata(model)
    return {
        "format": METADATA_VERSION,
        "covidxr_version": __version__,
        **meta,
        "input": {
            "name": INPUT_NAME,
            "dtype": "uint8",
            "shape": [None, meta["image_size"], meta["image_size"], meta["channels"]],
            "decode": "covidxr_core.predict.decode_files (greyscale or RGB, square resize)",
        },
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "order": meta["class_names"]},
    }


def _input_spec(metadata: dict[str, Any]) -> Any:
    import tensorflow as tf

    side, channels = metadata["image_size"], metadata["channels"]
    return tf.TensorSpec((None, side, side, channels), tf.uint8, name=INPUT_NAME)


def export_onnx(model: keras.Model, path: str | os.PathLike[str], metadata: dict[str, Any]) -> Path:
    """Writes ``path`` (ONNX) with Keras's exporter, the output renamed and the metadata added.

    Raises:
        ExportUnavailable: ``tf2onnx``/``onnx`` are not installed (or, on the JAX
            backend, ``jax2onnx``).
    """
    try:
        import onnx
    except ImportError as exc:
        raise ExportUnavailable(f"ONNX export needs the onnx package: {ONNX_INSTALL}") from exc
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        try:
            model.export(str(raw), format="onnx", verbose=False, input_signature=[
                _input_spec(metadata)
            ])  # fmt: skip
        except ImportError as exc:  # keras imports tf2onnx (or jax2onnx) only now
            raise ExportUnavailable(
                f"ONNX export needs {exc.name or 'tf2onnx'}: {ONNX_INSTALL}"
            ) from exc
        proto = onnx.load(str(raw))
    graph = proto.graph
    if len(graph.output) == 1 and graph.output[0].name != OUTPUT_NAME:
        old = graph.output[0].name
        for node in graph.node:
            node.output[:] = [OUTPUT_NAME if o == old else o for o in node.output]
        graph.output[0].name = OUTPUT_NAME
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, {METADATA_KEY: json.dumps(metadata, sort_keys=True)})
    proto.doc_string = (
        f"covidxr chest X-ray classifier: uint8 {INPUT_NAME} -> {OUTPUT_NAME} "
        f"({', '.join(metadata['class_names'])})"
    )
    onnx.checker.check_model(proto)
    from covidxr_core.atomic import write_bytes

    return write_bytes(path, proto.SerializeToString())


def export_saved_model(
    model: keras.Model, path: str | os.PathLike[str], metadata: dict[str, Any]
) -> Path:
    """Writes the SavedModel folder ``path`` (replacing an older one)."""
    import keras
    import tensorflow as tf

    path = Path(path)
    text = json.dumps(metadata, sort_keys=True)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serve",
        lambda image: {OUTPUT_NAME: model(image, training=False)},
        input_signature=[_input_spec(metadata)],
    )
    archive.add_endpoint(
        "metadata", tf.function(lambda: tf.constant(text), input_signature=[])
    )  # fmt: skip
    temp = Path(tempfile.mkdtemp(prefix=f".tmp-{path.name}-", dir=path.parent))
    try:
        archive.write_out(str(temp), verbose=False)
        (temp / "assets").mkdir(exist_ok=True)
        (temp / "assets" / f"{METADATA_KEY}.json").write_text(text)
        if path.exists():
            shutil.rmtree(path)
        temp.rename(path)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return path


@dataclass
class Exported:
    """What `export_all` wrote, and why a format was left out."""

    files: dict[str, Path] = field(default_factory=dict)  # "onnx", "saved_model"
    skipped: dict[str, str] = field(default_factory=dict)  # format -> reason
    metadata: dict[str, Any] = field(default_factory=dict)


def export_all(model: keras.Model, out_dir: str | os.PathLike[str]) -> Exported:
    """Writes ``OUT/model.onnx`` and ``OUT/saved_model/``; a format that cannot be written
    here is skipped with its reason (``Exported.skipped``), never an exception."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = Exported(metadata=export_metadata(model))
    for name, writer, target in (
        ("onnx", export_onnx, out / ONNX_FILE),
        ("saved_model", export_saved_model, out / SAVED_MODEL_DIR),
    ):
        try:
            result.files[name] = writer(model, target, result.metadata)
        except ExportUnavailable as exc:
            result.skipped[name] = str(exc)
        except Exception as exc:  # a converter bug must not lose the study's other files
            result.skipped[name] = f"{type(exc).__name__}: {exc}"
    return result


def export_model_file(
    keras_path: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None
) -> Exported:
    """`export_all` for a saved ``model.keras`` (next to it unless ``out_dir`` is given).

    Raises:
        ConfigError: the file cannot be loaded as a covidxr model.
    """
    from covidxr_core._backend import configure_backend

    configure_backend()
    from covidxr_core.model import load_saved

    model = load_saved(Path(keras_path))
    return export_all(model, Path(out_dir) if out_dir is not None else Path(keras_path).parent)


class OnnxClassifier:
    """A ``model.onnx`` written by `export_onnx`, run with onnxruntime (no TensorFlow).

    ``predict(images)`` has the shape of ``keras.Model.predict`` so that
    `covidxr_core.predict.predict_images` takes either.

    Raises:
        ConfigError: onnxruntime is missing, or the file is not a covidxr ONNX model.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise ConfigError(
                f"model path {path}: ONNX models need onnxruntime: {ONNX_INSTALL}"
            ) from None
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own types for a bad file
            raise ConfigError(
                f"model path {path}: cannot be loaded as an ONNX model ({type(exc).__name__}: "
                f"{exc})"
            ) from None
        props = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in props:
            raise ConfigError(
                f"model path {path}: ONNX model has no {METADATA_KEY!r} metadata, so it was "
                "not exported by covidxr"
            )
        self.metadata: dict[str, Any] = json.loads(props[METADATA_KEY])
        self.input_name = self.session.get_inputs()[0].name

    def predict(self, images: np.ndarray, batch_size: int = 32, verbose: int = 0) -> np.ndarray:
        """Class probabilities, ``float32 (N, classes)``."""
        batches = [
            self.session.run(None, {self.input_name: np.ascontiguousarray(images[i : i + batch_size])})[0]
            for i in range(0, len(images), batch_size)
        ]  # fmt: skip
        return np.concatenate(batches) if batches else np.zeros((0, 0), np.float32)


__all__ = [
    "INPUT_NAME",
    "METADATA_KEY",
    "ONNX_FILE",
    "OUTPUT_NAME",
    "SAVED_MODEL_DIR",
    "ExportUnavailable",
    "Exported",
    "OnnxClassifier",
    "export_all",
    "export_metadata",
    "export_model_file",
    "export_onnx",
    "export_saved_model",
]
