"""The synthetic data: the embedded demo set and the hard set, deterministic files loaded
through the normal path, and the command that writes them."""

from __future__ import annotations

import dataclasses
import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from covidxr_core.data import (
    DEMO_CLASSES,
    DEMO_COUNTS,
    DEMO_SEED,
    DEMO_VERSION,
    DataConfig,
    demo_data_path,
    draw_radiograph,
    load_dataset,
)
from covidxr_core.data import synthetic as synthetic_cli
from covidxr_core.data._synthetic import (
    DEMO,
    HARD,
    Difficulty,
    resolve_difficulty,
    write_synthetic,
)


@pytest.fixture(scope="module")
def demo() -> Path:
    return demo_data_path()  # the session's isolated cache (tests/conftest.py)


def test_layout_counts_and_image_format(demo: Path) -> None:
    assert demo.name == DEMO_VERSION
    for split, count in DEMO_COUNTS.items():
        for label in DEMO_CLASSES:
            files = sorted((demo / split / label).glob("*.png"))
            assert len(files) == count
    assert DEMO_COUNTS == {"train": 112, "validation": 30, "test": 30}
    with Image.open(demo / "train" / "corona" / "corona-000.png") as image:
        assert (image.format, image.mode, image.size) == ("PNG", "L", (256, 256))


def test_files_are_a_fixed_function_of_their_seed(demo: Path) -> None:
    # Regenerating an image from its documented seed gives the very bytes on disk, so two
    # machines (or two calls) produce identical data sets; checked on a sample.
    for split_index, split in enumerate(DEMO_COUNTS):
        for class_index, label in enumerate(DEMO_CLASSES):
            for i in (0, 17 if split != "train" else 111):
                rng = np.random.default_rng([DEMO_SEED, split_index, class_index, i])
                encoded = io.BytesIO()
                pixels = draw_radiograph(rng, corona=label == "corona")
                Image.fromarray(pixels).save(encoded, format="PNG", compress_level=1)
                assert (
                    demo / split / label / f"{label}-{i:03d}.png"
                ).read_bytes() == encoded.getvalue()
    assert demo_data_path() == demo  # a second call reuses the folder


def test_images_look_like_radiographs_and_classes_overlap(demo: Path) -> None:
    def load(label: str) -> np.ndarray:
        return np.stack(
            [
                np.asarray(Image.open(p), dtype=float)
                for p in sorted((demo / "train" / label).glob("*.png"))[:40]
            ]
        )

    corona, normal = load("corona"), load("normal")
    for images in (corona, normal):
        centre, corner = images[:, 96:160, 96:160].mean(), images[:, :16, :16].mean()
        assert centre > corner + 40  # a bright body on a dark film
        assert len({round(float(m)) for m in images.mean(axis=(1, 2))}) > 20  # exposures vary
    # Opacities brighten the lower lung zones on average, but the class means are close
    # relative to patient-to-patient spread: no trivial brightness cue.
    lower = slice(130, 200)
    gap = corona[:, lower].mean() - normal[:, lower].mean()
    spread = normal[:, lower].mean(axis=(1, 2)).std()
    assert 0 < gap < spread


def test_a_folder_drawn_by_other_code_is_not_trusted(demo: Path, tmp_path: Path) -> None:
    folder = tmp_path / DEMO_VERSION
    shutil.copytree(demo, folder)
    sample = folder / "train" / "corona" / "corona-000.png"
    drawn = sample.read_bytes()
    spare = folder / "train" / "normal" / "normal-005.png"
    spare_stat = spare.stat()
    assert demo_data_path(tmp_path) == folder  # complete and current: reused as it is
    assert spare.stat().st_ino == spare_stat.st_ino
    Image.new("L", (256, 256)).save(sample)  # same names, other drawing
    assert demo_data_path(tmp_path) == folder
    assert sample.read_bytes() == drawn  # regenerated, not trusted
    sample.unlink()  # incomplete
    assert demo_data_path(tmp_path) == folder
    assert sample.read_bytes() == drawn


def test_load_dataset_none_is_the_demo_through_the_normal_path() -> None:
    dataset = load_dataset(None, DataConfig(image_size=32))
    assert dataset.synthetic and dataset.source == f"synthetic:{DEMO_VERSION}"
    assert dataset.notes[0].startswith("synthetic demo data (demo-v1)")
    assert dataset.class_names == ("corona", "normal") and dataset.positive_class == "corona"
    assert dataset.counts() == {s: {"corona": n, "normal": n} for s, n in DEMO_COUNTS.items()}
    assert dataset.splits["train"].images.shape == (224, 32, 32, 1)
    assert dataset.skipped == ()


_CALLER = (
    "import sys; from covidxr_core.data import demo_data_path; print(demo_data_path(sys.argv[1]))"
)


@pytest.mark.slow
def test_concurrent_first_calls_agree(tmp_path: Path) -> None:
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _CALLER, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    paths = {racer.communicate(timeout=300)[0].strip() for racer in racers}
    assert all(racer.returncode == 0 for racer in racers)
    assert paths == {str(tmp_path / DEMO_VERSION)}
    assert len(list((tmp_path / DEMO_VERSION).glob("*/*/*.png"))) == 2 * sum(DEMO_COUNTS.values())
    assert not list(tmp_path.glob(".tmp-*"))


_TINY = {"train": 3, "validation": 2, "test": 2}


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.glob("*/*/*.png"))}


def test_the_demo_drawing_is_pinned() -> None:
    # The demo's name, sizes and seed, and what it draws, do not move when other
    # difficulties are added: pixel sums of three images (a tolerance of 0.01 grey levels
    # on the mean allows for last-bit differences of float functions between CPUs).
    assert (DEMO.version, dict(DEMO.counts), DEMO.seed) == (DEMO_VERSION, DEMO_COUNTS, DEMO_SEED)
    assert DEMO_VERSION == "demo-v1" and DEMO_SEED == 20200311
    pinned = {(0, 0, 0): 127.58698, (1, 1, 17): 112.02809, (2, 0, 29): 129.28943}
    for (split, label, i), mean in pinned.items():
        rng = np.random.default_rng([DEMO_SEED, split, label, i])
        assert abs(draw_radiograph(rng, corona=label == 0).mean() - mean) < 0.01


def test_unused_confounders_draw_no_random_numbers() -> None:
    # A confounder with chance 0 consumes nothing, so the demo's draws stay the same.
    other = dataclasses.replace(DEMO, scar_strength=(0.5, 0.9), early_factor=(0.0, 0.1))
    for corona in (True, False):
        a = draw_radiograph(np.random.default_rng([1, 2, 3]), corona)
        b = draw_radiograph(np.random.default_rng([1, 2, 3]), corona, other)
        assert np.array_equal(a, b)


def test_the_hard_set_is_larger_and_its_own() -> None:
    assert dict(HARD.counts) == {"train": 300, "validation": 150, "test": 150}
    assert HARD.version != DEMO_VERSION and HARD.seed != DEMO_SEED
    assert HARD.early_chance > 0 and HARD.scar_chance > 0 and HARD.effusion_chance > 0
    assert HARD.opacity_sigma[1] < DEMO.opacity_sigma[1]


def test_write_synthetic_layout_counts_and_determinism(tmp_path: Path) -> None:
    first = write_synthetic(tmp_path / "a", "hard", counts=_TINY)
    assert first == tmp_path / "a"
    for split, count in _TINY.items():
        for label in DEMO_CLASSES:
            names = sorted(p.name for p in (first / split / label).glob("*.png"))
            assert names == [f"{label}-{i:03d}.png" for i in range(count)]
    with Image.open(first / "test" / "normal" / "normal-001.png") as image:
        assert (image.format, image.mode, image.size) == ("PNG", "L", (256, 256))
    tree = _tree(first)
    assert _tree(write_synthetic(tmp_path / "b", "hard", counts=_TINY)) == tree
    # A smaller set is a prefix of a larger one: image i is the same image.
    small = _tree(write_synthetic(tmp_path / "c", "hard", counts=dict.fromkeys(_TINY, 1)))
    assert small and all(tree[name] == data for name, data in small.items())
    # Another seed is another set of patients; the demo drawing differs from the hard one.
    other = _tree(write_synthetic(tmp_path / "d", "hard", seed=7, counts=_TINY))
    assert other.keys() == tree.keys() and all(other[k] != tree[k] for k in tree)
    demo = _tree(write_synthetic(tmp_path / "e", "demo", counts=_TINY))
    assert all(demo[k] != tree[k] for k in tree)
    assert (
        demo["train/corona/corona-000.png"]
        == _tree(demo_data_path())["train/corona/corona-000.png"]
    )


def test_write_synthetic_keeps_a_finished_set_and_refuses_other_files(tmp_path: Path) -> None:
    folder = write_synthetic(tmp_path / "set", "hard", counts=_TINY)
    sample = folder / "train" / "corona" / "corona-000.png"
    inode = sample.stat().st_ino
    assert write_synthetic(folder, "hard", counts=_TINY) == folder
    assert sample.stat().st_ino == inode  # already there: not rewritten
    with pytest.raises(FileExistsError, match="holds something else"):
        write_synthetic(folder, "hard", seed=1, counts=_TINY)
    (tmp_path / "empty").mkdir()
    assert write_synthetic(tmp_path / "empty", "hard", counts=_TINY) == tmp_path / "empty"
    assert not list(tmp_path.glob(".tmp-*"))


def test_resolve_difficulty_checks_its_arguments() -> None:
    assert resolve_difficulty("hard") is HARD and resolve_difficulty(DEMO) is DEMO
    tiny = resolve_difficulty("hard", seed=5, counts={"test": 1, "train": 2, "validation": 1})
    assert isinstance(tiny, Difficulty) and tiny.seed == 5
    assert list(tiny.counts.items()) == [("train", 2), ("validation", 1), ("test", 1)]
    with pytest.raises(ValueError, match="unknown difficulty 'medium'"):
        resolve_difficulty("medium")
    with pytest.raises(ValueError, match="at least 1 image"):
        resolve_difficulty("hard", counts={"train": 2, "validation": 0, "test": 1})
    with pytest.raises(ValueError, match="at least 1 image"):
        resolve_difficulty("hard", counts={"train": 2})


def test_the_hard_set_loads_with_its_own_splits(tmp_path: Path) -> None:
    folder = write_synthetic(tmp_path / "hard", "hard", counts=_TINY)
    dataset = load_dataset(folder, DataConfig(image_size=32, cache_dir=tmp_path / "cache"))
    assert dataset.counts() == {s: {"corona": n, "normal": n} for s, n in _TINY.items()}
    assert dataset.positive_class == "corona" and not dataset.synthetic


def test_the_command_writes_the_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert synthetic_cli.main([str(out), "--counts", "3,2,2", "--seed", "9"]) == 0
    assert "hard-v1 (seed 9), per class train 3, validation 2, test 2" in capsys.readouterr().out
    assert _tree(out) == _tree(write_synthetic(tmp_path / "api", "hard", seed=9, counts=_TINY))
    assert synthetic_cli.main([str(out), "--counts", "3,2,2"]) == 2  # other seed: refused
    assert "holds something else" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        synthetic_cli.main([str(tmp_path / "x"), "--counts", "3,2"])
    assert exit_info.value.code == 2
