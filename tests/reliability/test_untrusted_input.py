"""Files from someone else: a model, a search space, a cache entry, an image bomb.

Each is built to do harm when loaded carelessly: it creates a canary file. The test first
shows the payload is real (a careless load does create the canary, where that is safe to
show), then that covidxr's loaders refuse it with an error that says why, canary absent.
A scan of the source backs this up for code paths no test reaches: no pickle from a
path, no ``allow_pickle=True``, no unsafe YAML, no ``safe_mode=False``, and Pillow's
decompression-bomb limit never lifted.
"""

from __future__ import annotations

import ast
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from _figures import observe
from _imagefolders import make_folder
from PIL import Image

from covidxr_core.data import DataConfig, load_dataset
from covidxr_core.errors import BadImageError, ConfigError

REPO = Path(__file__).resolve().parents[2]
PRODUCTION = ("covidxr_core", "tuning", "search_spaces")


# ---- a model with a Lambda layer ---------------------------------------------------------


def _evil_model(path: Path, canary: Path) -> None:
    """A covidxr-looking model whose Lambda layer writes `canary` whenever it is called."""
    from covidxr_core import configure_backend

    configure_backend()
    import keras

    from covidxr_core.model import CXRInput

    inputs = keras.Input((16, 16, 1), dtype="uint8")
    x = CXRInput(16, 1, ("corona", "normal"), "corona")(inputs)
    # The path is a constant inside the lambda's code object, which Keras stores as bytecode.
    touch = eval(f"lambda t: open({str(canary)!r}, 'w').close() or t")
    x = keras.layers.Lambda(touch)(x)
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(x))
    keras.Model(inputs, outputs).save(path)
    canary.unlink(missing_ok=True)  # building the model called the Lambda once


def test_a_model_with_a_lambda_layer_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from covidxr_core.predict import load_classifier, main
    from tuning.reporting.gradcam import build_gallery

    model, canary = tmp_path / "evil.keras", tmp_path / "canary"
    _evil_model(model, canary)
    image = tmp_path / "x.png"
    Image.new("L", (16, 16)).save(image)
    with observe(
        "untrusted input",
        ".keras model with a Lambda layer (its code writes a file)",
        "predict, the predict CLI and the report's Grad-CAM refuse it (safe_mode=True) with "
        "an error naming the Lambda layer; its code never runs",
    ) as obs:
        with pytest.raises(ConfigError) as caught:
            load_classifier(model)
        message = str(caught.value)
        assert "Lambda" in message and "arbitrary code" in message, message
        with pytest.raises(ConfigError, match="Lambda"):
            build_gallery(model, None)
        assert main(["--model", str(model), str(image)]) == 2
        cli = capsys.readouterr()
        assert "Lambda" in cli.err and "Traceback" not in cli.err + cli.out
        assert not canary.exists(), "the Lambda's code ran"
        keras_says = message.split("(ValueError: ", 1)[-1].split(". ")[0]
        obs["observed"] = f"ConfigError: ...{keras_says}...; predict CLI exit 2; canary absent"

        # The payload is real: the same file loaded without safe mode runs the Lambda.
        import keras

        keras.saving.load_model(model, safe_mode=False, compile=False)
        obs["observed"] += f"; control load with safe_mode=False ran the code: {canary.exists()}"
        assert canary.exists()


# ---- a search space with a Python tag ----------------------------------------------------

TAGS = {
    "object/apply": "!!python/object/apply:builtins.open [{canary}, w]",
    "name": "!!python/name:builtins.exec",
    "object/new": "!!python/object/new:builtins.open [{canary}, w]",
}


@pytest.mark.parametrize("tag", list(TAGS))
def test_a_search_space_with_a_python_tag_is_refused(tmp_path: Path, tag: str) -> None:
    from search_spaces import get_space

    canary = tmp_path / "canary"
    space = tmp_path / "evil.yaml"
    value = TAGS[tag].format(canary=json.dumps(str(canary)))
    space.write_text(
        f"params:\n  dropout: {{type: float, low: 0.0, high: 0.5}}\nfixed:\n  optimizer: {value}\n"
    )
    with observe(
        "untrusted input",
        f"search-space YAML with a !!python/{tag} tag",
        "refused by yaml.safe_load as invalid YAML (ConfigError naming the file); nothing runs",
    ) as obs:
        with pytest.raises(ConfigError, match="not valid YAML") as caught:
            get_space(str(space))
        obs["observed"] = f"ConfigError: {str(caught.value).splitlines()[0][:140]}"
        assert str(space) in str(caught.value)
        assert not canary.exists()


# ---- a cache entry that is a pickle ------------------------------------------------------


class _Payload:
    """Unpickling this creates the canary file."""

    def __init__(self, canary: Path) -> None:
        self.canary = str(canary)

    def __reduce__(self) -> tuple:
        return (open, (self.canary, "w"))


def test_a_pickled_cache_entry_with_a_forged_checksum_is_never_unpickled(tmp_path: Path) -> None:
    from covidxr_core.data import file_checksum

    data = make_folder(tmp_path / "data")
    config = DataConfig(image_size=16, cache_dir=str(tmp_path / "cache"), workers=1)
    first = load_dataset(data, config)
    saved = {k: np.array(s.images) for k, s in first.splits.items()}
    entry = Path(first.cache_path or "")
    canary = tmp_path / "canary"
    payload = np.empty(1, dtype=object)
    payload[0] = _Payload(canary)
    np.save(entry / "images.npy", payload, allow_pickle=True)
    manifest = json.loads((entry / "manifest.json").read_text())
    # Whoever can write the cache can write its manifest too: make the checksum match.
    manifest["arrays"]["images.npy"]["blake2b"] = file_checksum(entry / "images.npy")
    (entry / "manifest.json").write_text(json.dumps(manifest))
    with observe(
        "untrusted input",
        "cache images.npy replaced by a pickled object array, manifest checksum forged to match",
        "np.load(allow_pickle=False) refuses it; the entry is rebuilt; nothing is unpickled",
    ) as obs:
        second = load_dataset(data, config)
        note = next((n for n in second.notes if "invalid" in n), "")
        said = re.search(r"was invalid \((.*)\): rebuilt", note)
        obs["observed"] = (
            f"the load said {said.group(1) if said else note!r}; canary absent: {not canary.exists()}"
        )
        assert not canary.exists(), "the cache was unpickled"
        assert not second.cache_hit and "rebuilt" in note
        assert all(np.array_equal(second.splits[k].images, v) for k, v in saved.items())
        # The payload is real: a pickle-allowing load runs it.
        np.load(io.BytesIO(_pickled_npy(tmp_path / "control")), allow_pickle=True)
        assert (tmp_path / "control").exists()


def _pickled_npy(canary: Path) -> bytes:
    payload = np.empty(1, dtype=object)
    payload[0] = _Payload(canary)
    out = io.BytesIO()
    np.save(out, payload, allow_pickle=True)
    return out.getvalue()


# ---- decompression bombs -----------------------------------------------------------------


def _bomb(width: int, height: int) -> bytes:
    """A real PNG of `width` x `height` black 1-bit pixels: a few kB on disk."""
    out = io.BytesIO()
    Image.new("1", (width, height)).save(out, format="PNG", optimize=True)
    return out.getvalue()


@pytest.mark.parametrize(
    ("side", "band"),
    [
        (10_000, "1x-2x the limit: a warning in Pillow"),
        (14_000, "over 2x the limit: an error in Pillow"),
    ],
)
def test_a_decompression_bomb_is_skipped_or_named(tmp_path: Path, side: int, band: str) -> None:
    data = make_folder(tmp_path / "data")
    bomb = _bomb(side, side)
    (data / "train" / "corona" / "bomb.png").write_bytes(bomb)
    with observe(
        "untrusted input",
        f"decompression bomb: {side}x{side} px PNG of {len(bomb)} bytes ({band})",
        "skipped as a bomb under 'skip', BadImageError naming it under 'error'; Pillow's limit untouched",
    ) as obs:
        limit = Image.MAX_IMAGE_PIXELS
        dataset = load_dataset(
            data, DataConfig(image_size=16, cache_dir=str(tmp_path / "c"), workers=1)
        )
        reason = dict(dataset.skipped).get("train/corona/bomb.png", "")
        with pytest.raises(BadImageError, match="decompression bomb"):
            load_dataset(
                data,
                DataConfig(
                    image_size=16, cache_dir=str(tmp_path / "c"), workers=1, on_bad_image="error"
                ),
            )
        obs["observed"] = f"skipped: {reason[:90]!r}; BadImageError under 'error'"
        assert reason.startswith("decompression bomb")
        assert limit == Image.MAX_IMAGE_PIXELS


def test_importing_covidxr_keeps_pillows_bomb_limit() -> None:
    import importlib

    default = 1024 * 1024 * 1024 // 4 // 3  # Pillow's own default
    with observe(
        "untrusted input",
        "Pillow's decompression-bomb limit after importing every covidxr module",
        "PIL.Image.MAX_IMAGE_PIXELS still Pillow's default",
    ) as obs:
        for module in (
            "covidxr_core.data",
            "covidxr_core.predict",
            "covidxr_core.train",
            "tuning.study",
            "tuning.report",
            "search_spaces",
        ):
            importlib.import_module(module)
        obs["observed"] = f"MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS}"
        assert default == Image.MAX_IMAGE_PIXELS


# ---- the source, for paths no test reaches ------------------------------------------------

PICKLE_LOADERS = {"pickle", "cPickle", "cloudpickle", "dill", "joblib", "shelve", "marshal"}


def _safe_loaders(tree: ast.AST) -> set[str]:
    """Names of the classes a module defines on top of ``yaml.SafeLoader`` (or ``CSafeLoader``)."""
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and any(ast.unparse(base) in ("yaml.SafeLoader", "yaml.CSafeLoader") for base in node.bases)
    }


def _findings(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    safe_loaders = _safe_loaders(tree) | {"yaml.SafeLoader", "yaml.CSafeLoader"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = ast.unparse(node.func)
            head, _, attr = func.rpartition(".")
            kwargs = {k.arg: k.value for k in node.keywords if k.arg}
            if head.split(".")[-1] in PICKLE_LOADERS and attr in (
                "load",
                "loads",
                "open",
                "Unpickler",
            ):
                found.append((node.lineno, f"{func}(): unpickles"))
            if attr == "read_pickle" or func in ("torch.load",):
                found.append((node.lineno, f"{func}(): unpickles"))
            if attr == "load" and head in ("np", "numpy"):
                value = kwargs.get("allow_pickle")
                if value is not None and not (
                    isinstance(value, ast.Constant) and value.value is False
                ):
                    found.append((node.lineno, "np.load(allow_pickle=...) not False"))
            loader = kwargs.get("Loader")
            safe = loader is not None and ast.unparse(loader) in safe_loaders
            if (
                head == "yaml"
                and attr in ("load", "load_all", "unsafe_load", "full_load", "full_load_all")
                and not (attr in ("load", "load_all") and safe)
            ):
                # yaml.load(..., Loader=X) passes only where X is SafeLoader or a class this
                # module derives from it.
                found.append((node.lineno, f"{func}(): not safe_load"))
            if attr == "load_model":
                value = kwargs.get("safe_mode")
                if not (isinstance(value, ast.Constant) and value.value is True):
                    found.append((node.lineno, "load_model() without safe_mode=True"))
            if attr == "enable_unsafe_deserialization":
                found.append((node.lineno, "enable_unsafe_deserialization()"))
            text = ast.unparse(node)
            if (
                attr in ("simplefilter", "filterwarnings")
                and "DecompressionBomb" in text
                and "error" not in text
            ):
                found.append((node.lineno, "DecompressionBombWarning silenced"))
        if isinstance(node, ast.Assign):
            for target in node.targets:
                name = ast.unparse(target)
                if name.endswith("MAX_IMAGE_PIXELS") and isinstance(node.value, ast.Constant):
                    found.append((node.lineno, f"{name} = {node.value.value!r}"))
                if name.endswith("LOAD_TRUNCATED_IMAGES"):
                    found.append((node.lineno, f"{name} set"))
    return found


def test_the_source_loads_nothing_unsafely() -> None:
    files = sorted(p for package in PRODUCTION for p in (REPO / package).rglob("*.py"))
    with observe(
        "untrusted input",
        f"source scan of {', '.join(PRODUCTION)} ({len(files)} files)",
        "no pickle load, no np.load(allow_pickle=True), no yaml.load, every load_model with "
        "safe_mode=True, Pillow's bomb limit never set to a constant or silenced",
    ) as obs:
        problems = [
            f"{path.relative_to(REPO)}:{line}: {what}"
            for path in files
            for line, what in _findings(ast.parse(path.read_text(encoding="utf-8")))
        ]
        obs["observed"] = f"{len(problems)} findings" + (f": {problems}" if problems else "")
        obs["files_scanned"] = len(files)
        assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("source", "flagged"),
    [
        ("import yaml\nyaml.load(text)\n", True),
        ("import yaml\nyaml.load(text, Loader=yaml.Loader)\n", True),
        ("import yaml\nyaml.full_load(text)\n", True),
        ("import yaml\nyaml.load(text, Loader=yaml.SafeLoader)\n", False),
        ("import yaml\nclass S(yaml.SafeLoader): pass\nyaml.load(text, Loader=S)\n", False),
        ("import yaml\nclass U(yaml.Loader): pass\nyaml.load(text, Loader=U)\n", True),
    ],
)
def test_the_scan_tells_safe_yaml_loaders_from_unsafe_ones(source: str, flagged: bool) -> None:
    assert bool(_findings(ast.parse(source))) is flagged
