"""Where users already work: a real tiny study on a folder mixing DICOM and PNG, logged to
MLflow (SQLite) and TensorBoard, read back with their own readers; optuna-dashboard's own
server reads a finished study's optuna.db."""

from __future__ import annotations

import json
import socket
import threading
import urllib.request
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tuning import StudyError, run_study
from tuning.results import RoleSummary

pydicom = pytest.importorskip("pydicom")
mlflow = pytest.importorskip("mlflow")

DX = "1.2.840.10008.5.1.4.1.1.1.1"


def _write_dicom(path: Path, grey: np.ndarray, view: str, monochrome1: bool) -> None:
    """A 12-bit DX file, MONOCHROME1 or 2, with a view position and a manufacturer."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    stored = (255 - grey if monochrome1 else grey).astype(np.uint16) * 16
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DX
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = DX, meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.ViewPosition, ds.Manufacturer = view, "ACME Imaging"
    ds.PixelData = stored.tobytes()
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture(scope="module")
def mixed_data(cxr_fixture: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 20 real fixture radiographs as train 6 / validation 2 / test 2 per class, every
    other one a DICOM file (PA/AP, MONOCHROME1/2; one with no extension), the rest PNG."""
    root = tmp_path_factory.mktemp("mixed")
    splits = ["train"] * 6 + ["validation"] * 2 + ["test"] * 2
    for label in ("corona", "normal"):
        files = sorted((cxr_fixture / "validation" / label).iterdir())
        assert len(files) == 10
        for i, (source, split) in enumerate(zip(files, splits, strict=True)):
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            with Image.open(source) as image:
                grey = np.asarray(image.convert("L").resize((128, 128)), dtype=np.uint8)
            if i % 2:
                name = f"IM{i:04d}" if i == 5 else f"{source.stem}.dcm"
                _write_dicom(folder / name, grey, "PA" if i % 4 == 1 else "AP", i % 3 == 0)
            else:
                Image.fromarray(grey).save(folder / f"{source.stem}.png")
    return root


@pytest.fixture(scope="module")
def tracked_run(mixed_data: Path, tmp_path_factory: pytest.TempPathFactory, local_ray):
    """One real study on the mixed folder with --mlflow sqlite:///… and --tensorboard."""
    from tuning import StudySpec

    out = tmp_path_factory.mktemp("tracked")
    uri = f"sqlite:///{out / 'mlruns.db'}"
    spec = StudySpec(
        trials=2, epochs=2, image_size=64, space="small", retrain_seeds=1, n_boot=50,
        grace_epochs=2, data=str(mixed_data), output=str(out), name="tracked",
        mlflow=uri, mlflow_experiment="covidxr-test", tensorboard=True,
    )  # fmt: skip
    return run_study(spec), uri


pytestmark = pytest.mark.slow


def test_a_study_over_dicom_and_png_runs(tracked_run) -> None:
    result, _ = tracked_run
    summary = json.loads((result.run_dir / "summary.json").read_text())
    counts = summary["data"]["counts"]
    assert {s: sum(c.values()) for s, c in counts.items()} == {
        "train": 12,
        "validation": 4,
        "test": 4,
    }
    assert len(result.leaderboard) == 2
    assert (result.run_dir / "best" / "model.onnx").is_file()
    # The report shows the test split by DICOM View Position (PNG files: not given).
    assert sorted(summary["data"]["test_views"], key=str) == [None, None, "PA", "PA"]
    html = (result.run_dir / "report.html").read_text()
    assert 'id="by-view"' in html
    by_view = html[html.index('id="by-view"') :].split("</table>")[0]
    assert ">PA<" in by_view and ">not given<" in by_view


def test_mlflow_has_a_parent_run_and_one_child_per_trial(tracked_run) -> None:
    result, uri = tracked_run
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name("covidxr-test")
    runs = mlflow.search_runs([experiment.experiment_id])
    parent = runs[runs["tags.covidxr.role"] == "study"]
    assert len(parent) == 1
    assert parent.iloc[0]["status"] == "FINISHED"
    assert parent.iloc[0]["tags.mlflow.runName"] == "tracked"
    assert parent.iloc[0]["params.trials"] == "2"
    parent_id = parent.iloc[0]["run_id"]
    children = mlflow.search_runs(
        [experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'"
    )
    trials = children[children["tags.covidxr.role"] == "trial"]
    board = result.leaderboard.set_index("trial_id")
    assert sorted(trials["tags.covidxr.trial_id"]) == sorted(board.index)
    for _, run in trials.iterrows():
        row = board.loc[run["tags.covidxr.trial_id"]]
        for metric in ("val_auc", "val_loss", "val_accuracy", "best_metric"):
            if pd.notna(row[metric]):
                assert run[f"metrics.{metric}"] == pytest.approx(row[metric]), metric
        assert run["status"] == ("FAILED" if row["stop_reason"] == "failed" else "FINISHED")
        assert run["tags.stop_reason"] == row["stop_reason"]
        for name in (c for c in board.columns if c.startswith("param_")):
            if pd.notna(row[name]):
                assert run[f"params.{name.removeprefix('param_')}"] == str(row[name])
        # Per-epoch metrics: one val_auc per epoch the trial ran.
        history = mlflow.MlflowClient(uri).get_metric_history(run["run_id"], "val_auc")
        assert [m.step for m in history] == list(range(1, int(row["epochs_run"]) + 1))

    roles = children[children["tags.covidxr.role"].isin(["best", "baseline", "default"])]
    assert {"best", "baseline"} <= set(roles["tags.covidxr.role"])
    best = roles[roles["tags.covidxr.role"] == "best"].iloc[0]
    summary = RoleSummary.from_dict(
        json.loads((result.run_dir / "best" / "metrics.json").read_text())
    )
    assert summary.exported_test is not None
    assert best["metrics.test_auc"] == pytest.approx(summary.exported_test.auc)
    artifacts = {a.path for a in mlflow.MlflowClient(uri).list_artifacts(best["run_id"], "model")}
    assert {"model/model.keras", "model/model.onnx", "model/saved_model"} <= artifacts
    top = {a.path for a in mlflow.MlflowClient(uri).list_artifacts(parent_id)}
    assert "leaderboard.parquet" in top


def test_tensorboard_has_per_trial_scalars(tracked_run) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result, _ = tracked_run
    board = result.leaderboard.set_index("trial_id")
    root = result.run_dir / "tensorboard"
    assert sorted(p.name for p in root.iterdir()) == sorted(board.index)
    for trial_id, row in board.iterrows():
        events = EventAccumulator(str(root / str(trial_id)))
        events.Reload()
        assert {"val/auc", "val/loss", "train/loss"} <= set(events.Tags()["scalars"])
        auc = events.Scalars("val/auc")
        assert [e.step for e in auc] == list(range(1, int(row["epochs_run"]) + 1))
        assert auc[-1].value == pytest.approx(row["val_auc"], abs=1e-6)


def test_a_missing_mlflow_is_one_line_naming_the_extra(tiny_spec, monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a)
    )
    with pytest.raises(StudyError) as caught:
        run_study(tiny_spec("nomlflow", mlflow="sqlite:///x.db"))
    assert str(caught.value) == "--mlflow needs MLflow: pip install 'covidxr[mlflow]'"


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_optuna_dashboard_reads_the_study(tiny_run: Path) -> None:
    """optuna-dashboard's own WSGI app, served on 127.0.0.1, lists the study, its trials
    and their intermediate values (the per-epoch val AUC Ray's OptunaSearch reported)."""
    optuna_dashboard = pytest.importorskip("optuna_dashboard")
    app = optuna_dashboard.wsgi(f"sqlite:///{tiny_run / 'optuna.db'}")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = make_server("127.0.0.1", port, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:

        def get(path: str) -> dict:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
                return json.loads(r.read())

        studies = get("/api/studies")["study_summaries"]
        assert [s["study_name"] for s in studies] == [tiny_run.name]
        detail = get(f"/api/studies/{studies[0]['study_id']}")
    finally:
        server.shutdown()
        server.server_close()
    board = pd.read_parquet(tiny_run / "leaderboard.parquet")
    assert len(detail["trials"]) == len(board)
    assert detail["has_intermediate_values"] is True
    # Ray's OptunaSearch reports every epoch but a trial's last (or the one ASHA stops it
    # at) as an intermediate value, and that last one as the trial's value: the trial's
    # score, the mean of its last epochs (the leaderboard's `score`).
    finished = [t for t in detail["trials"] if t["state"] == "Complete"]
    done = board[board["status"] == "TERMINATED"]
    assert sorted(t["values"][0] for t in finished) == pytest.approx(sorted(done["score"]))
    steps = sorted([v["step"] for v in t["intermediate_values"]] for t in finished)
    # Under ASHA a trial's last result ends it without an intermediate value; without it
    # (the demo's 30 validation images a class are too few to stop on) every epoch has one.
    summary = json.loads((tiny_run / "summary.json").read_text())
    last = 0 if summary["early_stopping"]["enabled"] else 1
    expected = sorted(list(range(1, int(n) + last)) for n in done["epochs_run"])
    assert steps == expected
    reported = [v["value"] for t in finished for v in t["intermediate_values"]]
    assert reported and all(0.0 <= v <= 1.0 for v in reported)
