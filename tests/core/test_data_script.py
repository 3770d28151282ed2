"""The public API from a plain script: no ``if __name__ == "__main__":`` guard needed.

Decoding runs in threads of the calling process, so nothing re-imports the script. With
the earlier process pool (forkserver/spawn), a first, uncached call from such a script
failed with "a decode worker process died": each worker re-ran the script's top level.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .test_data_discover import make_tree

# Top-level code only, on purpose. It prints the count and how many decode calls the
# script's own process made (all of them: no other process decodes).
PLAIN_SCRIPT = """\
import sys
from covidxr_core import DataConfig, load_dataset
from covidxr_core.data import decode_calls

data = load_dataset(sys.argv[1], DataConfig(image_size=32, workers=2))
print(sum(len(split) for split in data.splits.values()), data.cache_hit, decode_calls())
"""


def _run_plain_script(tmp_path: Path, data: Path) -> tuple[int, str, int]:
    script = tmp_path / "plain_script.py"
    script.write_text(PLAIN_SCRIPT)
    cache = tmp_path / "empty-cache"  # empty: the first call must decode
    env = {**os.environ, "COVIDXR_CACHE": str(cache)}
    proc = subprocess.run(
        [sys.executable, str(script), str(data)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    count, hit, calls = proc.stdout.split()
    assert hit == "False"  # it really decoded
    return int(count), proc.stderr, int(calls)


def test_a_script_without_a_main_guard_loads_synthetic_images(tmp_path: Path) -> None:
    spec = {"train": {"corona": 12, "normal": 12}, "validation": {"corona": 4, "normal": 4}}
    root = make_tree(tmp_path / "data", spec)  # 32 images: above any in-process threshold
    count, _, calls = _run_plain_script(tmp_path, root)
    assert count == 32
    assert calls == 32  # every file decoded in the script's own process


def test_a_script_without_a_main_guard_loads_the_real_set(tmp_path: Path, covid_cxr: Path) -> None:
    count, _, calls = _run_plain_script(tmp_path, covid_cxr)
    assert count == 283  # 224 train + 59 validation, nothing skipped
    assert calls == 283
