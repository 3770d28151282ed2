"""Find the images of a data folder and assign them to splits and classes.

The folder looks like ``DIR/<split>/<class>/...``. `scan` only lists and stats files (it
opens no image). Carving a missing validation or test split out of train needs the
files' fingerprints, so that duplicates and groups stay together: `_carve.discover` is
`scan` followed by that carve. Carving acts on file lists, so the decode cache (keyed
by the files, not the splits) never depends on it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG

from covidxr_core.data._dataset import SPLITS, DroppedFile
from covidxr_core.data._dicom import DICOM_EXTENSIONS, PREAMBLE, has_preamble
from covidxr_core.errors import DataError

# What Keras's flow_from_directory accepts, plus WebP and GIF which Pillow reads as well,
# and DICOM (a DICOM file under any other name is found by its marker: `_dicom_marker`).
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
    | DICOM_EXTENSIONS
)
SPLIT_ALIASES = {
    "train": "train",
    "validation": "validation",
    "val": "validation",
    "valid": "validation",
    "test": "test",
}


@dataclass(frozen=True)
class FileEntry:
    """One image file as found on disk (stat of the symlink target when it is a link)."""

    relpath: str  # POSIX path relative to the data root, e.g. "train/corona/a.jpg"
    label: str  # class folder name
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class DataLayout:
    """The files of a data folder per split and class, after carving; no pixels.

    ``files`` holds every image file found, sorted by relative path: it is what the decode
    cache is keyed on. ``splits`` maps each of ``SPLITS`` to ``(relpath, class)`` pairs,
    sorted by path, and includes carved splits.
    """

    root: Path  # absolute, symlinks resolved
    class_names: tuple[str, ...]  # sorted
    splits: dict[str, tuple[tuple[str, str], ...]]
    files: tuple[FileEntry, ...]
    source_splits: dict[str, str]  # split -> folder name it was read from, e.g. "val"
    carved: tuple[str, ...] = ()  # splits carved out of train
    notes: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()  # (relpath, reason): links we refused to follow
    ignored: tuple[str, ...] = field(default=())  # hidden or non-image files, not an error
    groups: dict[str, str] = field(default_factory=dict)  # relpath -> group (DataConfig.groups)
    dropped: tuple[DroppedFile, ...] = ()  # removed under DataConfig.drop_leaked

    @property
    def missing(self) -> tuple[str, ...]:
        """The splits that were not given as folders, so are (to be) carved out of train."""
        return tuple(s for s in ("validation", "test") if s not in self.source_splits)

    def split_of(self) -> dict[str, str]:
        """relpath -> split name after carving."""
        return {rel: name for name, pairs in self.splits.items() for rel, _ in pairs}


def _is_hidden(name: str) -> bool:
    # .DS_Store, ._x.jpg (macOS resource forks with an image extension), .ipynb_checkpoints
    # (which flow_from_directory famously turns into a third class).
    return name.startswith(".")


class _Walker:
    """Lists one class folder recursively under the symlink policy of the package."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.skipped: list[tuple[str, str]] = []
        self.ignored: list[str] = []
        self._seen_dirs: set[str] = set()
        # Real paths of every class folder discovery lists on its own (set by `discover`).
        self.class_folders: list[str] = []

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def inside(self, real: str) -> bool:
        root = str(self.root)
        return real == root or real.startswith(root + os.sep)

    def walk(self, directory: Path, label: str, out: list[FileEntry]) -> None:
        real_dir = os.path.realpath(directory)
        if real_dir in self._seen_dirs:
            self.skipped.append((self.rel(directory), "symlink loop: folder already listed"))
            return
        self._seen_dirs.add(real_dir)
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            raise DataError(f"{directory}: cannot list folder ({exc.strerror})") from exc
        for entry in entries:
            path = directory / entry.name
            if _is_hidden(entry.name):
                self.ignored.append(self.rel(path))
                continue
            if entry.is_symlink():
                real = os.path.realpath(path)
                if not os.path.exists(real):
                    self.skipped.append((self.rel(path), "broken symlink"))
                    continue
                if not self.inside(real):
                    self.skipped.append((self.rel(path), f"symlink leaves the data folder: {real}"))
                    continue
                if real_dir == real or real_dir.startswith(real + os.sep):
                    self.skipped.append((self.rel(path), "symlink loop: points to a parent folder"))
                    continue
                if entry.is_dir() and any(
                    real == c or real.startswith(c + os.sep) for c in self.class_folders
                ):
                    # Following it would give its images this link's class and split, or
                    # the real folder's, depending on which is walked first.
                    self.skipped.append(
                        (self.rel(path), "symlink into a class folder, which is listed itself")
                    )
                    continue
            if entry.is_dir():  # follows links, which were checked above
                self.walk(path, label, out)
                continue
            if Path(entry.name).suffix.lower() not in IMAGE_EXTENSIONS and not _dicom_marker(path):
                self.ignored.append(self.rel(path))
                continue
            try:
                stat = path.stat()
            except OSError as exc:
                self.skipped.append((self.rel(path), f"cannot stat file: {exc.strerror}"))
                continue
            if not S_ISREG(stat.st_mode):
                # A named pipe (or a device) blocks whoever opens it; never hand it to a decoder.
                self.skipped.append((self.rel(path), "not a regular file (pipe, socket or device)"))
                continue
            out.append(FileEntry(self.rel(path), label, stat.st_size, stat.st_mtime_ns))


def _dicom_marker(path: Path) -> bool:
    """A DICOM file under any name (``IM0001``, ``1.2.840.113619.2.55.3.4.1``): a regular
    file with ``DICM`` after its 128-byte preamble. Reads those 132 bytes only; never opens
    what is not a regular file."""
    try:
        if not S_ISREG(path.stat().st_mode):
            return False
        with open(path, "rb") as handle:
            return has_preamble(handle.read(PREAMBLE + 4))
    except OSError:
        return False


def _subfolders(path: Path, walker: _Walker) -> tuple[list[Path], list[str]]:
    """Visible sub-folders and the names of the other visible entries of a split/root.

    Folder links are followed only when they stay inside the data folder, as in `_Walker`.
    """
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except OSError as exc:
        raise DataError(f"{path}: cannot list folder ({exc.strerror})") from exc
    folders: list[Path] = []
    others: list[str] = []
    for entry in entries:
        if _is_hidden(entry.name):
            continue
        if entry.is_symlink() and not walker.inside(os.path.realpath(path / entry.name)):
            walker.skipped.append((walker.rel(path / entry.name), "symlink leaves the data folder"))
        elif entry.is_dir():
            folders.append(path / entry.name)
        else:
            others.append(entry.name)
    return folders, others


def _find_splits(root: Path, walker: _Walker) -> tuple[dict[str, Path], list[str]]:
    folders, _ = _subfolders(root, walker)
    found: dict[str, Path] = {}
    notes: list[str] = []
    for folder in folders:
        split = SPLIT_ALIASES.get(folder.name.lower())
        if split is None:
            notes.append(f"ignored folder {folder.name!r}: not a split name")
            continue
        if split in found:
            raise DataError(
                f"{root}: folders {found[split].name!r} and {folder.name!r} both name the "
                f"{split} split; keep one"
            )
        found[split] = folder
    if "train" not in found:
        names = [f.name for f in folders]
        refused = [rel for rel, _ in walker.skipped]
        extra = f" (refused links leaving the folder: {refused})" if refused else ""
        raise DataError(
            f"{root}: no train split: expected DIR/train/<class>/ (with validation|val|valid "
            f"and test optional), but found folders {names}{extra}"
        )
    return found, notes


def scan(path: str | os.PathLike[str]) -> DataLayout:
    """List a data folder's images per split and class, without carving; opens no image.

    Splits that are not given as folders are empty in the result (see
    `DataLayout.missing`); `_carve.arrange` carves them.

    Raises:
        DataError: the folder is missing, has no train split, fewer than two classes, or
            an empty or missing class folder.
    """
    given = Path(path).expanduser()
    if not given.exists():
        raise DataError(f"{given}: data folder does not exist")
    if not given.is_dir():
        raise DataError(f"{given}: data path must be a folder of DIR/<split>/<class>/ images")
    root = Path(os.path.realpath(given))
    walker = _Walker(root)
    split_dirs, notes = _find_splits(root, walker)
    class_dirs = {split: _subfolders(folder, walker) for split, folder in split_dirs.items()}
    walker.class_folders = [
        os.path.realpath(d) for folders, _ in class_dirs.values() for d in folders
    ]
    class_names = tuple(sorted(d.name for d in class_dirs["train"][0]))
    if len(class_names) < 2:
        raise DataError(
            f"{split_dirs['train']}: needs two or more class folders, but found {list(class_names)}"
        )
    found: dict[str, list[FileEntry]] = {}
    for split, (folders, loose) in class_dirs.items():
        names = sorted(d.name for d in folders)
        if names != list(class_names):
            raise DataError(
                f"{split_dirs[split]}: class folders {names} differ from train's "
                f"{list(class_names)}; every split needs the same class folders"
            )
        walker.ignored.extend(f"{split_dirs[split].name}/{name}" for name in loose)
        found[split] = []
        for folder in folders:
            before = len(found[split])
            walker.walk(folder, folder.name, found[split])
            if len(found[split]) == before:
                raise DataError(
                    f"{folder}: class folder has no image files (a class with zero images "
                    f"cannot be trained or evaluated); image extensions: "
                    f"{sorted(IMAGE_EXTENSIONS)}"
                )

    for split, name in ((s, split_dirs[s].name) for s in split_dirs):
        if name != split:
            notes.append(f"{split} split read from folder {name!r}")
    if walker.ignored:
        shown = ", ".join(walker.ignored[:5]) + (", ..." if len(walker.ignored) > 5 else "")
        notes.append(f"ignored {len(walker.ignored)} hidden or non-image files: {shown}")

    all_files = tuple(sorted((f for fs in found.values() for f in fs), key=lambda f: f.relpath))
    splits = {s: tuple(sorted((f.relpath, f.label) for f in found.get(s, ()))) for s in SPLITS}
    return DataLayout(
        root=root,
        class_names=class_names,
        splits=splits,
        files=all_files,
        source_splits={s: d.name for s, d in split_dirs.items()},
        notes=tuple(notes),
        skipped=tuple(walker.skipped),
        ignored=tuple(walker.ignored),
    )


__all__ = ["IMAGE_EXTENSIONS", "DataLayout", "FileEntry", "scan"]
