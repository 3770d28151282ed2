"""Groups of files that belong together (``DataConfig.groups``): e.g. one patient's films.

A groups file is a CSV with a header naming (at least) the columns ``path`` and
``group``; ``path`` is relative to the data folder (``train/corona/a.jpg``) or absolute
(inside the data folder). Files it does not list are groups of their own. Carving never
separates a group (`_carve`), and a group found in two splits, which can only happen
between given split folders, is reported as leakage (`_leakage.find_group_leaks`).
"""

from __future__ import annotations

import csv
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path

from covidxr_core.data._dataset import SPLITS
from covidxr_core.data._discover import DataLayout
from covidxr_core.errors import DataError

COLUMNS = ("path", "group")
_SHOWN = 3


@dataclass(frozen=True)
class GroupLeak:
    """A group (e.g. a patient) with files in more than one split."""

    group: str
    splits: tuple[str, ...]  # in SPLITS order
    files: tuple[str, ...]  # the group's files, sorted

    def describe(self) -> str:
        """One line, e.g. ``group 'patient 17' in train and validation (3 files)``."""
        return f"group {self.group!r} in {' and '.join(self.splits)} ({len(self.files)} files)"


def _relpath(value: str, root: Path) -> str:
    """A CSV path as a data-root relative POSIX path ("" when it lies outside the root)."""
    candidate = Path(value).expanduser()
    if candidate.is_absolute():
        for form in (candidate, Path(os.path.realpath(candidate))):
            try:
                return form.relative_to(root).as_posix()
            except ValueError:
                continue
        return ""
    rel = posixpath.normpath(value.replace("\\", "/"))
    return "" if rel.startswith("../") or rel == ".." else rel


def read_groups(path: str | os.PathLike[str], layout: DataLayout) -> dict[str, str]:
    """Read a groups file against the files of a layout.

    Args:
        path: The CSV (``path,group``).
        layout: The data folder's files (`scan` or `discover`).

    Returns:
        relpath -> group for every listed file.

    Raises:
        DataError: the file cannot be read, lacks a column, names a path that is not an
            image of the data folder, gives a path an empty group, or gives one path two
            different groups; the message names the file, the rule and the value.
    """
    source = Path(path).expanduser()
    try:
        with open(source, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except FileNotFoundError as exc:
        raise DataError(f"{source}: groups file does not exist") from exc
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{source}: groups file cannot be read as CSV ({exc})") from exc
    header = [name.strip() for name in rows[0]] if rows else []
    if any(column not in header for column in COLUMNS):
        missing = [c for c in COLUMNS if c not in header]
        raise DataError(
            f"{source}: a groups file needs the columns {','.join(COLUMNS)}, but column(s) "
            f"{missing} are missing from its header {header}"
        )
    at_path, at_group = header.index("path"), header.index("group")
    known = {f.relpath for f in layout.files}
    groups: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        if len(row) <= max(at_path, at_group):
            raise DataError(
                f"{source}: line {line}: every row needs a path and a group, but got {row}"
            )
        value, group = row[at_path].strip(), row[at_group].strip()
        rel = _relpath(value, layout.root)
        if rel not in known:
            raise DataError(
                f"{source}: line {line}: path {value!r} is not an image file of the data "
                f"folder {layout.root} (paths are relative to it, e.g. "
                f"{layout.files[0].relpath!r}, or absolute inside it)"
            )
        if not group:
            raise DataError(f"{source}: line {line}: path {value!r} has an empty group")
        if rel in groups and groups[rel] != group:
            raise DataError(
                f"{source}: line {line}: path {rel!r} is in group {groups[rel]!r} (line "
                f"{first_line[rel]}) and in group {group!r}; a file belongs to one group"
            )
        groups[rel] = group
        first_line.setdefault(rel, line)
    return groups


def group_leaks(layout: DataLayout) -> list[GroupLeak]:
    """Groups of ``layout.groups`` with files in two or more splits, by group name."""
    split_of = layout.split_of()
    members: dict[str, list[str]] = {}
    for rel, group in layout.groups.items():
        if rel in split_of:  # dropped or skipped files are in no split
            members.setdefault(group, []).append(rel)
    leaks = []
    for group in sorted(members):
        splits = {split_of[rel] for rel in members[group]}
        if len(splits) > 1:
            leaks.append(
                GroupLeak(
                    group, tuple(s for s in SPLITS if s in splits), tuple(sorted(members[group]))
                )
            )
    return leaks


def group_notes(layout: DataLayout) -> list[str]:
    """What the groups file did, for ``Dataset.notes``."""
    if not layout.groups:
        return []
    names = set(layout.groups.values())
    notes = [
        f"groups: {len(layout.groups)} files in {len(names)} groups "
        f"({len(layout.files) - len(layout.groups)} files not listed: a group each)"
    ]
    leaks = group_leaks(layout)
    if leaks:
        shown = "; ".join(leak.describe() for leak in leaks[:_SHOWN])
        more = "; ..." if len(leaks) > _SHOWN else ""
        notes.append(f"leakage: {len(leaks)} groups appear in two splits: {shown}{more}")
    return notes


__all__ = ["COLUMNS", "GroupLeak", "group_leaks", "group_notes", "read_groups"]
