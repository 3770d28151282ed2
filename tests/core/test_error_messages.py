"""Library errors name parameters (``DataConfig.cache_dir``, ``model path``), not CLI flags.

A function called from Python has no ``--model`` or ``--cache-dir``; only the argparse
front ends speak in flags, and they print their own messages.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import covidxr_core
from covidxr_core.errors import ConfigError
from covidxr_core.predict import load_classifier

PACKAGE = Path(covidxr_core.__file__).parent
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _raise_texts(tree: ast.AST) -> list[tuple[int, str]]:
    """Every string literal (f-string parts included) inside a ``raise`` statement."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            for part in ast.walk(node.exc):
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    found.append((part.lineno, part.value))
    return found


def test_no_raise_in_the_library_speaks_in_flags() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for line, text in _raise_texts(ast.parse(path.read_text(), str(path))):
            if FLAG.search(text):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {text!r}")
    assert not offenders, "\n".join(offenders)


def test_the_scan_sees_a_flag_word() -> None:
    # The check above is only worth something if it can fail.
    tree = ast.parse('def f(p):\n    raise ValueError(f"--model {p}: no such file")\n')
    assert any(FLAG.search(text) for _, text in _raise_texts(tree))


def test_a_missing_model_names_the_parameter_the_path_and_the_rule(tmp_path: Path) -> None:
    missing = tmp_path / "nope.keras"
    with pytest.raises(ConfigError) as caught:
        load_classifier(missing)
    assert str(caught.value) == f"model path {missing}: no such file"
