"""Experiment tracking (issue 30, item 5): a tracked run is in a real SQLite-backed MLflow store with its
children, metrics, tags and artifacts (read back with MLflow's client); an unreachable store is one line (the
run goes on, or with strict is refused before it starts); a run without tracking is as before."""

import json
import sys

import pandas as pd
import pytest

from backtester.config import parse_config
from backtester.runner import run

from .conftest import assert_run_refused, base_config

mlflow = pytest.importorskip("mlflow")


def tracked_config(minute_file, tmp_path, **tracking):
    raw = base_config(minute_file, tmp_path, har={"type": "har"}, naive={})
    raw["evaluation"] = {"mcs_reps": 200}
    raw["tracking"] = {"uri": f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}", **tracking}
    return raw


def test_a_tracked_run_is_in_mlflow_with_its_children_metrics_tags_and_artifacts(minute_file, tmp_path):
    from mlflow.tracking import MlflowClient

    from backtester.tracking import tag_audit

    said = []
    res = run(parse_config(tracked_config(minute_file, tmp_path, experiment="exp")), log=said.append)
    where = json.loads((res.out_dir / "tracking.json").read_text())
    client = MlflowClient(where["uri"])
    experiment = client.get_experiment_by_name("exp")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.info.run_id == where["run_id"] and parent.info.status == "FINISHED"
    manifest = json.loads((res.out_dir / "manifest.json").read_text())
    tags = parent.data.tags
    assert tags["config_id"] == manifest["config_id"] and tags["data_sha256"] == manifest["data"]["sha256"]
    assert tags["backend"] == "jax" and tags["results"] == str(res.out_dir.resolve())
    assert parent.data.params["backtest.horizon"] == "4" and parent.data.params["strategies.har.type"] == "har"
    metrics = pd.read_parquet(res.out_dir / "metrics.parquet")
    scores = metrics.groupby("strategy")["qlike"].mean()
    assert parent.data.metrics["qlike.naive"] == pytest.approx(scores["naive"])
    dm = pd.read_parquet(res.out_dir / "tests.parquet")
    want = dm[(dm["test"] == "dm") & (dm["horizon"] == 0) & (dm["model"] == "naive") & (dm["against"] == "har")]
    assert parent.data.metrics["dm_p.naive"] == pytest.approx(float(want["pvalue"].iloc[0]))
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.tags["strategy"] for r in children) == ["har", "naive"]
    har = next(r for r in children if r.data.tags["strategy"] == "har").data.metrics
    assert {f"qlike_h{h:02d}" for h in range(1, 5)} <= set(har) and "utility" in har and "var_exceeded_1pct" in har
    assert har["qlike_h01"] == pytest.approx(
        float(metrics.query("strategy == 'har' and horizon == 1")["qlike"].iloc[0])
    )
    files = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"report.md", "report.html", "tests.parquet", "economic.parquet"} <= files
    assert any(line.startswith("tracked in MLflow: run ") for line in said)
    tag_audit(res.out_dir, "PASS", said.append)  # what backtest audit does on a tracked run
    assert client.get_run(parent.info.run_id).data.tags["audit"] == "PASS"


def test_an_unreachable_store_is_said_and_the_run_goes_on_or_with_strict_is_refused(minute_file, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    raw = tracked_config(minute_file, tmp_path, uri="http://127.0.0.1:9")
    said = []
    res = run(parse_config(raw), log=said.append)
    assert (res.out_dir / "report.md").is_file() and not (res.out_dir / "tracking.json").exists()
    assert any(
        line.startswith("tracking skipped: cannot reach the MLflow store at http://127.0.0.1:9") for line in said
    )
    raw["tracking"]["strict"] = True
    raw["output"]["dir"] = str(tmp_path / "results")
    import shutil

    shutil.rmtree(tmp_path / "results")
    assert_run_refused(raw, tmp_path, "tracking.uri: cannot reach the MLflow store at http://127.0.0.1:9")


def test_tracking_without_mlflow_is_one_line_and_without_tracking_nothing_is_logged(minute_file, tmp_path, monkeypatch):
    raw = base_config(minute_file, tmp_path, naive={})
    res = run(parse_config(raw))
    assert not (res.out_dir / "tracking.json").exists() and not (tmp_path / "results" / "mlflow.db").exists()
    import shutil

    shutil.rmtree(tmp_path / "results")
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if the extra were not installed
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    raw["tracking"] = "mlflow"
    import yaml
    from click.testing import CliRunner

    from backtester.cli import main

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = CliRunner().invoke(main, ["run", str(path)])
    assert out.exit_code == 2 and out.output.count("\n") == 1, out.output
    assert "tracking: MLflow is not installed; pip install -e '.[mlflow]'" in out.output
    assert not (tmp_path / "results").exists()
