"""Run locations and the claim on a run folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuning.errors import StudyError
from tuning.runfolder import claim, is_uri, locate


def test_run_locations_parse_local_folders_and_uris(tmp_path, monkeypatch):
    local = locate(str(tmp_path), "study1")
    assert local.local == tmp_path.resolve() / "study1" and local.uri is None
    assert local.tune_storage == str(local.local)
    assert locate(f"file://{tmp_path}", "s").local == tmp_path.resolve() / "s"
    monkeypatch.setenv("COVIDXR_STAGING", str(tmp_path / "staging"))
    cloud = locate("s3://bucket/runs/", "study1")
    assert cloud.uri == "s3://bucket/runs/study1"
    assert cloud.local == tmp_path / "staging" / "study1"
    assert cloud.tune_storage == cloud.uri
    assert is_uri("gs://b/x") and not is_uri("file:///x") and not is_uri("runs")
    # No name: a timestamp, so two runs never share a folder by default.
    assert locate("runs", None).local.name[:2] == "20"


def test_staging_defaults_to_the_cache_root(tmp_path, monkeypatch):
    monkeypatch.delenv("COVIDXR_STAGING", raising=False)
    monkeypatch.setenv("COVIDXR_CACHE", str(tmp_path / "cache"))
    assert locate("s3://b/r", "x").local == tmp_path / "cache" / "runs" / "x"


def test_a_claimed_folder_is_exclusive_and_a_failed_start_leaves_nothing(tmp_path):
    run = tmp_path / "r"
    with claim(run, resume=False):
        (run / "study.json").write_text("{}")
        with pytest.raises(StudyError, match="in use by another running study"), claim(run, True):
            pass
    with pytest.raises(StudyError, match="already exists"), claim(run, resume=False):
        pass
    with pytest.raises(StudyError, match="holds no study to resume"), claim(tmp_path / "x", True):
        pass

    failing = tmp_path / "fails"
    with pytest.raises(StudyError), claim(failing, resume=False):
        raise StudyError("found before any trial")
    assert not failing.exists()
    assert isinstance(run, Path) and run.exists()
