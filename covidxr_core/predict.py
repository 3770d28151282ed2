"""Classify X-ray files with a saved covidxr model, optionally with Grad-CAM overlays.

    python -m covidxr_core.predict --model runs/NAME/best/model.keras a.jpg b.png
    python -m covidxr_core.predict --model runs/NAME/best/model.keras --json scans/*.jpeg
    python -m covidxr_core.predict --model MODEL --gradcam heatmaps/ scans/*.jpeg
    python -m covidxr_core.predict --model runs/NAME/best/model.onnx scans/*.dcm

Preprocessing travels with the model: its ``CXRInput`` layer records the image size,
channels and class order it was trained with, and each file is decoded by the same
function that decoded the training data. Exit status: 0 all files classified, 1 some
files could not be decoded (the others are still classified), 2 the model or an option
cannot be used (e.g. ``--gradcam`` naming a file: refused before the model loads).

A ``model.onnx`` (`covidxr_core.export`) runs with onnxruntime and its embedded metadata;
that path imports neither TensorFlow nor Keras (``pip install 'covidxr[onnx]'``).
Grad-CAM needs the ``.keras`` model.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from covidxr_core.atomic import write_bytes

# decode_task is the data package's one-file decoder: using it here keeps prediction
# byte-for-byte the same as the decode the model was trained on.
from covidxr_core.data import DecodeTask, decode_task
from covidxr_core.errors import BadImageError, ConfigError, CovidxrError
from covidxr_core.outputs import check_output_folder

if TYPE_CHECKING:
    import keras

    from covidxr_core.export import OnnxClassifier

# Overlays are written at least this large so a 64 px model's heatmap is still readable.
MIN_OVERLAY_SIDE = 256


@dataclass(frozen=True)
class Prediction:
    """One file's class probabilities (in the model's class order) and its decided class.

    With two classes the class is decided by the model's stored threshold on the positive
    class's probability (chosen on validation when it was trained); ``threshold`` is None
    where the model has none (three or more classes), and the class is then the argmax.
    """

    file: str
    probabilities: dict[str, float]
    predicted_class: str
    threshold: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "probabilities": self.probabilities,
            "predicted_class": self.predicted_class,
            "threshold": self.threshold,
        }


def load_classifier(path: str | Path) -> tuple[keras.Model | OnnxClassifier, dict[str, Any]]:
    """Load a covidxr model safely and read the preprocessing settings it carries.

    A ``.onnx`` file is run with onnxruntime (`covidxr_core.export.OnnxClassifier`),
    without importing TensorFlow or Keras; anything else is loaded as a ``.keras`` model.

    Raises:
        ConfigError: The file is missing, is not a Keras (or ONNX) model, or was not built
            by covidxr.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"model path {path}: no such file")
    if path.suffix.lower() == ".onnx":
        from covidxr_core.export import OnnxClassifier

        onnx_model = OnnxClassifier(path)
        return onnx_model, onnx_model.metadata
    # Keras (and its backend) load only now, so a wrong path is answered at once;
    # the backend set-up must come first. Importing the model module registers CXRInput
    # and AffineAugment, which safe_mode loading must find by name.
    from covidxr_core._backend import configure_backend

    configure_backend()
    from covidxr_core.model import load_saved, model_metadata

    model = load_saved(path)
    return model, model_metadata(model)


def decode_files(
    files: Sequence[str], image_size: int, channels: int
) -> tuple[np.ndarray, list[str], list[BadImageError]]:
    """Decode files as the training data was decoded.

    Returns:
        ``(images, good_files, problems)``: uint8 ``(N, size, size, channels)`` for the files
        that decoded, their names in input order, and one error per file that did not.
    """
    images: list[np.ndarray] = []
    good: list[str] = []
    problems: list[BadImageError] = []
    for name in files:
        task = DecodeTask(
            path=str(Path(name).resolve()),
            relpath=name,
            image_size=image_size,
            channels=channels,
            fingerprint=False,
        )
        result = decode_task(task)
        if result.ok and result.pixels is not None:
            images.append(result.pixels)
            good.append(name)
        else:
            problems.append(BadImageError(name, result.rule or "not decoded", result.value))
    shape = (0, image_size, image_size, channels)
    return (np.stack(images) if images else np.zeros(shape, np.uint8)), good, problems


def predict_images(
    model: keras.Model | OnnxClassifier,
    metadata: dict[str, Any],
    images: np.ndarray,
    files: Sequence[str],
) -> list[Prediction]:
    """Class probabilities for decoded images, one `Prediction` per file."""
    if len(files) == 0:
        return []
    from covidxr_core.operating_point import decide

    probs = np.asarray(model.predict(images, batch_size=32, verbose=0), dtype=np.float64)
    names = metadata["class_names"]
    threshold = metadata.get("threshold")
    decided = decide(probs, int(metadata["positive_index"]), threshold)
    return [
        Prediction(
            file=name,
            probabilities={c: float(p) for c, p in zip(names, row, strict=True)},
            predicted_class=names[int(k)],
            threshold=threshold,
        )
        for name, row, k in zip(files, probs, decided, strict=True)
    ]


def write_gradcam(
    model: keras.Model, images: np.ndarray, files: Sequence[str], out_dir: Path, image_size: int
) -> tuple[list[Path], list[str]]:
    """One PNG per image: the decoded image with the predicted class's Grad-CAM on top.

    Files are named after the image (``scan.jpeg`` -> ``scan.gradcam.png``), numbered when
    two inputs share a name.

    Returns:
        The PNGs written, and the input files whose map is blank: nothing in the last
        convolution's output supports the predicted class, so their overlay is plain grey.
    """
    from covidxr_core.gradcam import gradcam, overlay, png_bytes

    out_dir.mkdir(parents=True, exist_ok=True)
    heatmaps, _ = gradcam(model, images)
    side = max(image_size, MIN_OVERLAY_SIDE)
    written: list[Path] = []
    blank: list[str] = []
    used: set[str] = set()
    for image, heat, name in zip(images, heatmaps, files, strict=True):
        stem = Path(name).stem
        candidate, n = f"{stem}.gradcam.png", 1
        while candidate in used:
            n += 1
            candidate = f"{stem}-{n}.gradcam.png"
        used.add(candidate)
        path = out_dir / candidate
        write_bytes(path, png_bytes(overlay(image, heat, size=side)))
        written.append(path)
        if not heat.any():
            blank.append(name)
    return written, blank


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m covidxr_core.predict",
        description="Class probabilities for chest X-ray files from a saved covidxr model.",
    )
    p.add_argument(
        "--model", required=True, help="a model.keras (or model.onnx) written by covidxr"
    )
    p.add_argument("images", nargs="+", metavar="IMG", help="image files (JPEG, PNG, ...)")
    p.add_argument(
        "--json",
        action="store_true",
        help='print JSON: [{"file", "probabilities": {class: p}, "predicted_class"}]',
    )
    p.add_argument("--gradcam", metavar="DIR", help="write a Grad-CAM overlay PNG per image")
    return p


def _print_table(predictions: list[Prediction], metadata: dict[str, Any], model: str) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    positive = metadata["positive_class"]
    threshold = metadata.get("threshold")
    decision = (
        f"{escape(positive)} when P({escape(positive)}) >= {threshold:.4f}, "
        f"chosen on validation ({escape(str(metadata.get('operating_point')))})"
        if threshold is not None
        else "the most probable class"
    )
    table = Table(
        title=f"{escape(model)}  ({metadata['image_size']} px, {metadata['channels']} "
        f"channel(s)); predicted: {decision}",
        title_justify="left",
    )
    table.add_column("file", overflow="fold")
    for name in metadata["class_names"]:
        label = f"P({escape(name)})" + (" ★" if name == positive else "")
        table.add_column(label, justify="right")
    table.add_column("predicted")
    for pred in predictions:
        style = "bold red" if pred.predicted_class == positive else "green"
        table.add_row(
            escape(pred.file),
            *(f"{pred.probabilities[c]:.3f}" for c in metadata["class_names"]),
            f"[{style}]{escape(pred.predicted_class)}[/]",
        )
    # In a pipe rich would assume 80 columns and fold paths mid-name; a terminal keeps its own.
    Console(highlight=False, width=None if sys.stdout.isatty() else 200).print(table)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (see the module docstring)."""
    from rich.console import Console
    from rich.markup import escape

    args = _parser().parse_args(argv)
    err = Console(stderr=True, highlight=False)
    if not Path(args.model).is_file():  # the flag's own message, before Keras loads
        err.print(f"[bold red]error:[/] --model {escape(args.model)}: no such file", soft_wrap=True)
        return 2
    if args.gradcam is not None:
        if Path(args.model).suffix.lower() == ".onnx":
            err.print("[bold red]error:[/] --gradcam needs the model.keras, not an ONNX model")
            return 2
        try:  # before the model loads: an overlay folder that cannot be written is refused
            check_output_folder(args.gradcam, "--gradcam")
        except ConfigError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
            return 2
    if Path(args.model).suffix.lower() != ".onnx":  # ONNX runs without TensorFlow
        from covidxr_core._backend import configure_backend_quietly

        configure_backend_quietly()  # no oneDNN / CUDA start-up lines on the console
    try:
        model, metadata = load_classifier(args.model)
    except CovidxrError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        return 2

    images, good, problems = decode_files(args.images, metadata["image_size"], metadata["channels"])
    predictions = predict_images(model, metadata, images, good)
    if args.json:
        # stdout carries only the JSON, so `| jq` works even when some files were bad.
        print(json.dumps([p.to_json() for p in predictions], indent=2))
    elif predictions:
        _print_table(predictions, metadata, args.model)
    status = 1 if problems else 0
    if args.gradcam and len(good):
        try:
            written, blank = write_gradcam(
                model, images, good, Path(args.gradcam), metadata["image_size"]
            )
        except OSError as exc:  # e.g. the disk filled up, or the folder went away meanwhile
            err.print(
                f"[bold red]error:[/] --gradcam {escape(args.gradcam)}: cannot be written "
                f"({escape(exc.strerror or str(exc))}); the predictions above stand",
                soft_wrap=True,
            )
            written, blank, status = [], [], 2
        if written:
            err.print(
                f"[green]wrote[/] {len(written)} Grad-CAM overlay(s) to {escape(args.gradcam)}"
            )
        for name in blank:
            err.print(
                f"[yellow]note:[/] {escape(name)}: blank Grad-CAM (no region supports "
                "the predicted class), its overlay is the plain image"
            )
    for problem in problems:
        err.print(f"[bold red]bad image:[/] {escape(str(problem))}", soft_wrap=True)
    return status


__all__ = [
    "Prediction",
    "decode_files",
    "load_classifier",
    "main",
    "predict_images",
    "write_gradcam",
]


if __name__ == "__main__":
    sys.exit(main())
