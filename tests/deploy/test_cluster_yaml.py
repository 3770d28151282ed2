"""cluster.yaml is checked by Ray's own cluster-config validation, offline."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
pytest.importorskip("jsonschema", reason="Ray's config validation needs jsonschema")
from ray.autoscaler._private.util import prepare_config, validate_config  # noqa: E402


def _load() -> dict:
    return yaml.safe_load((REPO / "cluster.yaml").read_text())


def test_cluster_yaml_is_valid_for_ray():
    validate_config(prepare_config(_load()))


def test_a_misspelt_key_fails_validation():
    cfg = _load()
    cfg["idle_timout_minutes"] = cfg.pop("idle_timeout_minutes")
    with pytest.raises(Exception, match=r"idle_timout_minutes|Additional properties"):
        validate_config(prepare_config(copy.deepcopy(cfg)))


def test_gpu_workers_scale_to_zero_and_only_ssh_is_open():
    cfg = _load()
    types = cfg["available_node_types"]
    gpu_types = {name: t for name, t in types.items() if t.get("resources", {}).get("GPU")}
    assert {t["resources"]["GPU"] for t in gpu_types.values()} == {1, 4}
    assert all(t["min_workers"] == 0 for t in gpu_types.values())
    assert cfg["idle_timeout_minutes"] > 0
    rules = cfg["provider"]["security_group"]["IpPermissions"]
    assert [(r["FromPort"], r["ToPort"]) for r in rules] == [(22, 22)]
    assert "--dashboard-host=127.0.0.1" in " ".join(cfg["head_start_ray_commands"])


def test_every_key_carries_a_comment_and_nothing_secret():
    text = (REPO / "cluster.yaml").read_text()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "-")):
            continue
        if re.match(r"^[\w./-]+\s*:", stripped):
            above = lines[i - 1].strip() if i else ""
            assert above.startswith("#") or "#" in line, f"line {i + 1} has no comment: {line!r}"
    assert not re.search(r"AKIA[0-9A-Z]{16}|aws_secret_access_key|BEGIN .*PRIVATE KEY", text)
