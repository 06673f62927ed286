"""Training on a Dask cluster: a real LocalCluster (two worker processes on 127.0.0.1) embeds the photos and runs the
fits; the model it trains predicts what the model trained on this machine alone predicts."""

from __future__ import annotations

import json
import sqlite3
import sys

import joblib
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from modeling import train
from modeling.cluster import ClusterError, dask_cluster
from modeling.data import load_products

distributed = pytest.importorskip("distributed", reason="dask.distributed is a scale extra (pip install -e '.[scale]')")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as local, distributed.Client(local) as client:
        yield local.scheduler_address, client


def _copy(source, target):
    with sqlite3.connect(source) as original, sqlite3.connect(target) as copy:
        original.backup(copy)
    return target


def _train(db, images, backbone, out, *extra) -> dict:
    code = train.main(["--db", str(db), "--images", str(images), "--image-backbone", str(backbone),
                       "--out", str(out), "--cache-dir", str(out / "cache"), "--min-products", "5", "--no-progress",
                       "--keep", "stacked", *extra])
    assert code == 0
    return json.loads(next(out.glob("*.json")).read_text())


def _networks_per_worker(client) -> list[int]:
    return sorted(client.run(lambda: len(sys.modules["modeling.cluster"]._networks)
                             if "modeling.cluster" in sys.modules else 0).values())


def test_a_cluster_run_trains_the_model_a_local_run_trains(cluster, synthetic_crawl, tiny_backbone, tmp_path):
    address, client = cluster
    source, images, _ = synthetic_crawl
    # Dask's workers run BLAS on one thread; so does the local run here, or float sums would differ in order
    with threadpool_limits(1):
        local_card = _train(_copy(source, tmp_path / "local.db"), images, tiny_backbone, tmp_path / "local")
    assert _networks_per_worker(client) == [0, 0]
    with distributed.get_task_stream(client) as stream:
        cluster_card = _train(_copy(source, tmp_path / "cluster.db"), images, tiny_backbone, tmp_path / "cluster",
                              "--cluster", address)
    ran = " ".join(str(task["key"]) for task in stream.data)
    assert "embed_photos" in ran and "_fit_part" in ran, ran[:500]
    # the workers embedded every photo (each built the backbone once), and this machine cached the vectors
    assert _networks_per_worker(client) == [1, 1]
    cached = next((tmp_path / "cluster" / "cache").glob("*.sqlite"))
    with sqlite3.connect(cached) as connection:
        assert connection.execute("SELECT count(*) FROM embeddings").fetchone()[0] > 1000

    frame = load_products(source, images, progress=False)
    test = frame[frame["split"] == "test"]
    local = joblib.load(tmp_path / "local" / f"{local_card['experiment_id']}.joblib")
    remote = joblib.load(tmp_path / "cluster" / f"{cluster_card['experiment_id']}.joblib")
    assert (local.predict(test) == remote.predict(test)).all()
    np.testing.assert_array_equal(remote.predict_proba(test), local.predict_proba(test))
    assert cluster_card["metrics"]["test"]["stacked"]["accuracy"] == pytest.approx(
        local_card["metrics"]["test"]["stacked"]["accuracy"])


def test_an_unreachable_scheduler_is_a_clear_error():
    with pytest.raises(ClusterError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9"), \
            dask_cluster("tcp://127.0.0.1:9", timeout="2s"):
        pass
