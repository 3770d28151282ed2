"""Fuzzing the data folder: whatever lies in it, loading ends as documented, and promptly.

The data package documents what a file can turn into (covidxr_core/data/__init__.py):
decoded pixels, a skip with a reason (a bad image, a refused link), an ignored file
(hidden or not an image extension), or, under ``on_bad_image="error"``, a `BadImageError`
naming the file. Hypothesis generates contents (random bytes, truncated real radiographs,
images in every odd mode and shape, decompression bombs), file names (unicode, spaces,
the 255-byte limit, leading dots, bytes that are not UTF-8), links (out of the folder,
broken, looping back, into another class or split) and named pipes, and each example must
end in one of those outcomes within a time limit. Examples are derandomized so CI sees the
same inputs every run.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import tempfile
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from _figures import observe
from _imagefolders import CLASSES, image_bytes
from _timelimit import EXAMPLE_LIMIT_S, time_limit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from covidxr_core.data import (
    IMAGE_EXTENSIONS,
    DataConfig,
    Dataset,
    DecodeTask,
    decode_task,
    load_dataset,
)
from covidxr_core.errors import BadImageError, DataError

# Pillow warns about the corrupt EXIF blocks and short reads it survives; they are expected.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# What decode_task may say about a bad file (the documented bad-image reasons).
BAD_IMAGE_RULES = (
    "empty file",
    "cannot read file",
    "not an image Pillow can identify",
    "truncated or corrupt image data",
    "decompression bomb: more pixels than PIL.Image.MAX_IMAGE_PIXELS",
    # DICOM (covidxr_core.data._dicom; docs/integrations.md): a .dcm name that starts like
    # a raw data set is read by pydicom
    "not a DICOM file pydicom can read",
    "DICOM without pixel data",
    "DICOM SOP class is not an image",
    "multi-frame DICOM (a radiograph is one frame)",
    "compressed transfer syntax that no installed pydicom handler decodes",
    "corrupt compressed DICOM pixel data",
    "truncated or corrupt DICOM pixel data",
    "DICOM pixel data is not one greyscale or RGB image",
    "truncated or corrupt DICOM data",
    "DICOM file but pydicom is not installed",
)
# What discovery may say about an entry it did not follow.
LINK_REASONS = (
    "broken symlink",
    "symlink leaves the data folder",
    "symlink loop",
    "symlink into a class folder",
    "cannot stat",
    "not a regular file",
)
NAME_MAX = 255  # bytes, Linux


# ---- contents ---------------------------------------------------------------------------

MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "I", "I;16", "F", "YCbCr")
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")
ODD_SIZES = ((1, 1), (1, 10_000), (10_000, 1), (2, 3), (300, 7))


def _in_mode(mode: str, size: tuple[int, int], seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    rgb = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")
    if mode == "PA":
        return rgb.convert("P").convert("PA")
    if mode == "I;16":
        # Detector-like data: 12 of 16 bits used.
        return Image.fromarray(rng.integers(0, 4096, (size[1], size[0]), dtype=np.uint16))
    if mode == "F":
        return Image.fromarray(rng.normal(0, 1e3, (size[1], size[0])).astype(np.float32))
    return rgb.convert(mode)


def _savable() -> list[tuple[str, str]]:
    """(mode, format) pairs this Pillow can write, found by trying a tiny image once."""
    pairs = []
    for mode in MODES:
        for fmt in FORMATS:
            with contextlib.suppress(Exception):
                _in_mode(mode, (3, 2), 0).save(io.BytesIO(), format=fmt)
                pairs.append((mode, fmt))
    return pairs


SAVABLE = _savable()


def encode(mode: str, fmt: str, size: tuple[int, int], seed: int, transparent: bool) -> bytes:
    image = _in_mode(mode, size, seed)
    out = io.BytesIO()
    if transparent and mode == "P" and fmt in ("PNG", "GIF"):
        image.save(out, format=fmt, transparency=0)
    else:
        image.save(out, format=fmt)
    return out.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims `width` x `height` pixels and holds almost none (a bomb's shape)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@st.composite
def contents(draw: st.DrawFn, seeds: list[bytes]) -> tuple[str, bytes]:
    """(what it is, bytes) of one file."""
    # Weighted towards images: Hypothesis favours the first choices when it shrinks.
    kind = draw(
        st.sampled_from(["odd image", "real", "odd image", "random", "real", "bomb", "empty"])
    )
    if kind == "random":
        return kind, draw(st.binary(min_size=1, max_size=4096))
    if kind == "empty":
        return kind, b""
    if kind == "bomb":
        # 1x-2x Pillow's limit only warns, past 2x it raises: both must be refused.
        side = draw(st.sampled_from([10_000, 20_000, 65_535]))
        return f"bomb {side}x{side}", png_header(side, side)
    if kind == "real":
        data = draw(st.sampled_from(seeds))
    else:
        mode, fmt = draw(st.sampled_from(SAVABLE))
        size = draw(
            st.one_of(st.sampled_from(ODD_SIZES), st.tuples(st.integers(1, 64), st.integers(1, 64)))
        )
        data = encode(mode, fmt, size, draw(st.integers(0, 2**16)), draw(st.booleans()))
        kind = f"{mode} {fmt} {size[0]}x{size[1]}"
    cut = draw(st.one_of(st.none(), st.integers(0, max(0, len(data) - 1))))
    if cut is None:
        return kind, data
    return f"{kind} cut at {cut}/{len(data)} bytes", data[:cut]


# ---- names ------------------------------------------------------------------------------

EXTENSIONS = [*sorted(IMAGE_EXTENSIONS), ".PNG", ".JpEg", ".txt", "", ".png.bak"]


def _fits(name: str) -> bool:
    encoded = os.fsencode(name)
    return (
        0 < len(encoded) <= NAME_MAX
        and name not in (".", "..")
        and "/" not in name
        and "\0" not in name
    )


@st.composite
def file_names(draw: st.DrawFn) -> str:
    ext = draw(st.sampled_from(EXTENSIONS))
    style = draw(st.sampled_from(["unicode", "spaces", "longest", "dot", "not utf-8"]))
    if style == "unicode":
        stem = draw(
            st.text(
                st.characters(exclude_categories=("Cs",), exclude_characters="/\0"),
                min_size=1,
                max_size=30,
            )
        )
    elif style == "spaces":
        stem = " " + draw(st.text("ab c\t", min_size=0, max_size=5)) + " "
    elif style == "longest":
        char = draw(st.sampled_from(["x", "é", "中", "🩻"]))
        room = NAME_MAX - len(ext.encode())
        stem = char * (room // len(char.encode()))
    elif style == "dot":
        stem = "." + draw(st.text("abc._", min_size=0, max_size=8))
    else:
        stem = os.fsdecode(
            draw(st.binary(min_size=1, max_size=8)).replace(b"/", b"_").replace(b"\0", b"_")
        )
    name = stem + ext
    if not _fits(name):
        name = "fallback" + ext
    return name


# ---- a folder around the fuzzed entries -------------------------------------------------


def base_folder(root: Path) -> dict[str, str]:
    """One good 32 px PNG per class per split; returns relpath -> class."""
    files = {}
    n = 0
    for split in ("train", "validation", "test"):
        for label in CLASSES:
            n += 1
            rel = f"{split}/{label}/base-{n}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(image_bytes(n, 32))
            files[rel] = label
    return files


LINKS = (
    "outside file",
    "outside folder",
    "inside file",
    "broken",
    "loop .",
    "loop ..",
    "loop ../..",
    "loop ../../..",
    "other class ../normal",
    "other split ../../test/corona",
)


@st.composite
def entries(draw: st.DrawFn, seeds: list[bytes]) -> list[tuple[str, str, str, bytes]]:
    """(where, name, kind, content) items to add under train/corona."""
    items = []
    for _ in range(draw(st.integers(1, 3))):
        name = draw(file_names())
        pick = draw(st.integers(0, 7))
        if pick <= 1:
            items.append(("link", name, draw(st.sampled_from(LINKS)), b""))
        elif pick == 2:
            items.append(("pipe", name, "named pipe", b""))
        else:
            subdir = draw(st.sampled_from(["", "", "nested", ".hidden-dir"]))
            what, data = draw(contents(seeds))
            items.append((subdir, name, what, data))
    return items


def _plant(root: Path, outside: Path, items: list[tuple[str, str, str, bytes]]) -> dict[str, str]:
    """Write the items; return relpath -> description of what was planted."""
    home = root / "train" / "corona"
    planted: dict[str, str] = {}
    for where, name, kind, data in items:
        if where == "pipe":
            path = home / name
            if path.exists() or path.is_symlink():
                continue
            os.mkfifo(path)
            planted[path.relative_to(root).as_posix()] = kind
        elif where == "link":
            path = home / name
            if path.exists() or path.is_symlink():
                continue
            target = {
                "outside file": outside / "outside.png",
                "outside folder": outside,
                "inside file": root / "train" / "normal" / "base-2.png",
                "broken": home / "missing-target.png",
            }.get(kind, Path(kind.split(" ")[-1]))
            path.symlink_to(target)
            planted[path.relative_to(root).as_posix()] = f"link {kind}"
        else:
            folder = home / where if where else home
            if folder.exists() and not folder.is_dir():
                continue
            folder.mkdir(exist_ok=True)
            path = folder / name
            if path.exists() or path.is_symlink():
                continue
            path.write_bytes(data)
            planted[path.relative_to(root).as_posix()] = kind
    return planted


def _accounted(rel: str, dataset: Dataset) -> str | None:
    """How the loader accounted for one planted entry, or None if it lost it silently."""
    decoded = {f for s in dataset.splits.values() for f in s.files}
    if rel in decoded or any(f.startswith(rel + "/") for f in decoded):
        return "decoded"
    for skipped, _reason in dataset.skipped:
        if skipped == rel or rel.startswith(skipped + "/"):
            return "skipped"
    layout = dataset.extra["layout"]
    for ignored in layout.ignored:
        if ignored == rel or rel.startswith(ignored + "/"):
            return "ignored"
    return None


def _seed_images(request: pytest.FixtureRequest) -> list[bytes]:
    """Real radiograph bytes from the shared fixture when present, plus made-up images."""
    made = [image_bytes(i, 200, fmt) for i, fmt in enumerate(("JPEG", "PNG", "WEBP"))]
    try:
        root = request.getfixturevalue("cxr_fixture")
    except pytest.skip.Exception:
        return made
    real = sorted(p for p in Path(root).rglob("*") if p.is_file())
    # The six smallest keep examples quick; all are real JPEG/PNG radiographs.
    real = sorted(real, key=lambda p: p.stat().st_size)[:6]
    return [p.read_bytes() for p in real] + made


@pytest.fixture(scope="module")
def seeds(request: pytest.FixtureRequest) -> list[bytes]:
    return _seed_images(request)


FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=20_000,  # ms; EXAMPLE_LIMIT_S is the hard stop
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)


def test_fuzzed_file_decodes_or_is_reported(seeds: list[bytes]) -> None:
    outcomes: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    with (
        observe(
            "fuzz",
            "one fuzzed file handed to the decoder (decode_task)",
            "pixels of the requested shape, or one of the documented bad-image reasons; "
            f"never another exception, never over {EXAMPLE_LIMIT_S:g}s",
        ) as obs,
        tempfile.TemporaryDirectory() as work,
    ):

        @settings(FUZZ, max_examples=250)
        @given(
            content=contents(seeds),
            channels=st.sampled_from([1, 3]),
            ext=st.sampled_from(EXTENSIONS),
        )
        def check(content: tuple[str, bytes], channels: int, ext: str) -> None:
            what, data = content
            path = Path(work) / f"file{ext}"
            path.write_bytes(data)
            with time_limit(EXAMPLE_LIMIT_S):
                result = decode_task(DecodeTask(str(path), path.name, 16, channels))
            if result.ok:
                assert result.pixels is not None and result.pixels.dtype == np.uint8
                assert result.pixels.shape == (16, 16, channels), (what, result.pixels.shape)
                outcomes["decoded"] += 1
                modes[result.mode] += 1
            else:
                assert result.rule in BAD_IMAGE_RULES, (what, result.rule, result.value)
                outcomes[result.rule] += 1
            if what.startswith("bomb"):
                assert result.rule == BAD_IMAGE_RULES[4], (what, result.rule)

        check()
        total = sum(outcomes.values())
        obs.update(
            observed=f"{total} files: "
            + ", ".join(f"{k} {v}" for k, v in outcomes.most_common())
            + f"; decoded modes: {', '.join(sorted(modes))}; seed images: "
            f"{len(seeds) - 3} real radiographs from cxr-fixture, 3 generated",
            inputs_fuzzed=total,
            other_exceptions=0,
            hangs=0,
        )
        assert outcomes["decoded"] and len(outcomes) >= 3, outcomes


@pytest.mark.parametrize("policy", ["skip", "error"])
def test_fuzzed_folder_loads_as_documented(seeds: list[bytes], policy: str) -> None:
    outcomes: Counter[str] = Counter()
    links: Counter[str] = Counter()
    with (
        observe(
            "fuzz",
            f"data folder with fuzzed files, names and links (on_bad_image={policy!r})",
            "every planted entry is decoded, skipped with a reason or ignored as documented; "
            + (
                "the load never fails"
                if policy == "skip"
                else "or BadImageError names a planted file"
            ),
        ) as obs,
        tempfile.TemporaryDirectory() as work,
    ):
        counter = iter(range(10**9))

        @settings(FUZZ, max_examples=60 if policy == "skip" else 30)
        @given(items=entries(seeds))
        def check(items: list[tuple[str, str, str, bytes]]) -> None:
            case = Path(work) / f"case-{next(counter)}"
            root, outside = case / "data", case / "outside"
            outside.mkdir(parents=True)
            (outside / "outside.png").write_bytes(image_bytes(99, 32))
            base = base_folder(root)
            planted = _plant(root, outside, items)
            config = DataConfig(
                image_size=16, cache_dir=str(case / "cache"), workers=1, on_bad_image=policy
            )
            try:
                with time_limit(EXAMPLE_LIMIT_S):
                    dataset = load_dataset(root, config)
            except BadImageError as exc:
                assert policy == "error", f"BadImageError under 'skip': {exc}"
                assert any(exc.path.endswith(rel) for rel in planted), (exc.path, planted)
                assert exc.rule in BAD_IMAGE_RULES, exc.rule
                outcomes["BadImageError"] += 1
                return
            except DataError as exc:
                raise AssertionError(
                    f"DataError although every class keeps a good image: {exc}\nplanted: {planted}"
                ) from exc
            files = {f for s in dataset.splits.values() for f in s.files}
            assert set(base) <= files, "a good file went missing"
            for rel, what in planted.items():
                how = _accounted(rel, dataset)
                assert how is not None, f"{rel!r} ({what}) was neither decoded, skipped nor ignored"
                outcomes[how] += 1
                if what.startswith(("link", "named pipe")):
                    links[f"{what}: {how}"] += 1
            for reason in (r for _, r in dataset.skipped):
                assert reason.startswith(LINK_REASONS + BAD_IMAGE_RULES), reason
            # A file's class is the class folder it (or the link to it) sits in.
            for split in dataset.splits.values():
                for rel, label in zip(split.files, split.labels, strict=True):
                    assert dataset.class_names[label] == rel.split("/")[1], (rel, label)
                    assert not rel.startswith(("../", "/")), rel
            outcomes["loads"] += 1

        check()
        examples = outcomes["loads"] + outcomes["BadImageError"]
        entries_seen = sum(v for k, v in outcomes.items() if k not in ("loads", "BadImageError"))
        obs.update(
            observed=f"{examples} folders ({entries_seen} planted entries): "
            + ", ".join(f"{k} {v}" for k, v in outcomes.most_common())
            + "; links and pipes: "
            + ", ".join(f"{k} {v}" for k, v in sorted(links.items())),
            inputs_fuzzed=examples,
            other_exceptions=0,
            hangs=0,
        )


@pytest.mark.parametrize("mode", MODES)
def test_every_odd_mode_and_shape_decodes(mode: str) -> None:
    """Each mode in each format Pillow writes it in, at 1x1, 1x10000, 10000x1 and more."""
    pairs = [(m, fmt) for m, fmt in SAVABLE if m == mode]
    assert pairs, f"this Pillow writes mode {mode} in none of {FORMATS}"
    decoded: Counter[str] = Counter()
    with (
        observe(
            "fuzz",
            f"odd image mode {mode} ({', '.join(f for _, f in pairs)}) at sizes "
            + ", ".join(f"{w}x{h}" for w, h in ODD_SIZES),
            "decodes to uint8 pixels of the requested shape, greyscale and RGB",
        ) as obs,
        tempfile.TemporaryDirectory() as work,
    ):
        for _, fmt in pairs:
            for size in ODD_SIZES:
                data = encode(mode, fmt, size, seed=len(decoded), transparent=True)
                path = Path(work) / f"x.{fmt.lower()}"
                path.write_bytes(data)
                for channels in (1, 3):
                    with time_limit(EXAMPLE_LIMIT_S):
                        result = decode_task(DecodeTask(str(path), path.name, 16, channels))
                    assert result.ok, (mode, fmt, size, result.rule, result.value)
                    assert result.pixels is not None
                    assert result.pixels.shape == (16, 16, channels)
                    decoded[result.mode] += 1
        obs.update(
            observed=f"{sum(decoded.values())} decodes, all pixels; stored as "
            + ", ".join(sorted(decoded)),
            inputs_fuzzed=sum(decoded.values()),
        )
