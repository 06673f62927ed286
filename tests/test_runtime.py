"""The inference runtimes of the image branch: OpenVINO and Keras give the same vectors, share one embedding cache,
and ``auto`` falls back to Keras saying why. Every network here is real (the shared MobileNetV2, a tiny saved CNN).
"""

from __future__ import annotations

import csv
import importlib.util
import logging
import pickle
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modeling.backbones import BackboneError, LoadedBackbone
from modeling.cluster import _networks as cluster_networks
from modeling.cluster import embed_photos
from modeling.image import ImageEmbedder, make_image_classifier
from modeling.runtime import OpenVINONetwork, converted_path
from shopstyle_spider import config

needs_openvino = pytest.mark.skipif(importlib.util.find_spec("openvino") is None,
                                    reason="openvino is not installed here (pip install openvino; CI installs it)")


def _shared_photos(fashion_dir, per_type: int = 8) -> tuple[list[str], list[str]]:
    """Photos of three article types from the shared catalog, ``per_type`` each, with their types as labels."""
    wanted = {"Tshirts": [], "Watches": [], "Casual Shoes": []}
    with open(fashion_dir / "styles.csv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            photo = fashion_dir / "images" / f"{row['id']}.jpg"
            kind = wanted.get(row["articleType"])
            if kind is not None and len(kind) < per_type and photo.is_file():
                kind.append(str(photo))
    paths = [p for kind in wanted.values() for p in kind]
    assert len(paths) == 3 * per_type, "the shared catalog lacks photos of these types"
    return paths, [label for label, kind in wanted.items() for _ in kind]


@needs_openvino
@pytest.mark.slow
def test_openvino_and_keras_give_the_same_vectors_and_predictions_on_shared_photos(fashion_dir, tmp_path, caplog):
    backbone = str(config.mobilenet_v2_backbone())
    paths, labels = _shared_photos(fashion_dir)
    cache = str(tmp_path / "cache")
    with caplog.at_level(logging.INFO, logger="modeling.runtime"):
        openvino = ImageEmbedder(backbone, batch_size=8, cache_dir=cache, runtime="openvino", progress=False).fit()
    assert isinstance(openvino.network(), OpenVINONetwork)
    assert "converted and kept in" in caplog.text
    keras = ImageEmbedder(backbone, batch_size=8, runtime="keras", progress=False).fit()
    assert isinstance(keras.network(), LoadedBackbone)
    assert openvino.fingerprint_ == keras.fingerprint_  # one cache key for both
    by_openvino, by_keras = openvino.transform(paths), keras.transform(paths)
    assert by_openvino.shape == by_keras.shape == (len(paths), 1280)
    np.testing.assert_allclose(by_openvino, by_keras, rtol=0, atol=1e-4)
    # the image branch's classifier, trained on one runtime's vectors (a photo in two is held out of training),
    # files every photo alike from either runtime's vectors
    train = np.arange(len(paths)) % 2 == 0
    classifier = make_image_classifier().fit(by_keras[train], np.asarray(labels)[train])
    assert classifier.predict(by_openvino).tolist() == classifier.predict(by_keras).tolist()
    np.testing.assert_allclose(classifier.predict_proba(by_openvino), classifier.predict_proba(by_keras), atol=1e-4)


@needs_openvino
def test_one_cache_serves_both_runtimes_and_the_conversion_is_kept(tiny_backbone, tmp_path, caplog):
    photos = {}
    for seed, name in enumerate(("red", "blue", "grey")):
        photos[name] = str(tmp_path / f"{name}.jpg")
        Image.fromarray(np.random.default_rng(seed).integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(photos[name])
    cache = str(tmp_path / "cache")
    keras = ImageEmbedder(str(tiny_backbone), batch_size=2, cache_dir=cache, runtime="keras", progress=False).fit()
    first = keras.transform([photos["red"], photos["blue"]])
    with caplog.at_level(logging.INFO):
        openvino = ImageEmbedder(str(tiny_backbone), batch_size=2, cache_dir=cache, runtime="openvino",
                                 progress=False).fit()
        both = openvino.transform([photos["red"], photos["blue"], photos["grey"]])
    assert "2 new photos embedded" not in caplog.text and "1 new photos embedded, 2 from the cache" in caplog.text
    np.testing.assert_array_equal(both[:2], first)  # read back from the cache, not embedded again
    assert converted_path(cache, openvino.fingerprint_).is_file()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        again = ImageEmbedder(str(tiny_backbone), cache_dir=cache, runtime="openvino", progress=False).fit()
    assert "the conversion of" in caplog.text and "converted and kept" not in caplog.text
    np.testing.assert_allclose(again.network().embed(np.full((1, 32, 32, 3), 128, np.float32)),
                               keras.network().embed(np.full((1, 32, 32, 3), 128, np.float32)), atol=1e-5)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="modeling.image"):
        assert np.isfinite(keras.transform([photos["grey"]])).all()
    assert "0 new photos embedded, 1 from the cache" in caplog.text  # OpenVINO's vector, read by Keras
    restored = pickle.loads(pickle.dumps(openvino))  # a compiled OpenVINO model cannot be pickled: none is
    assert restored.runtime == "openvino" and "_loaded" not in restored.__dict__
    # a cluster worker's task, run here: the runtime it is given converts in memory and gives the same vectors
    on_worker, problems = embed_photos(str(tiny_backbone), None, openvino.fingerprint_,
                                       [("grey", "grey.jpg", Path(photos["grey"]).read_bytes())], "openvino")
    assert not problems and isinstance(cluster_networks[(str(tiny_backbone), None, "openvino")], OpenVINONetwork)
    np.testing.assert_allclose(on_worker["grey"], both[2], atol=1e-5)


def test_auto_falls_back_to_keras_saying_why_when_openvino_cannot_be_imported(tiny_backbone, monkeypatch, caplog):
    # None in sys.modules is Python's own way to make an import fail: the one stand-in here, for an uninstalled
    # package on a machine where it is installed
    monkeypatch.setitem(sys.modules, "openvino", None)
    with caplog.at_level(logging.WARNING, logger="modeling.runtime"):
        embedder = ImageEmbedder(str(tiny_backbone), runtime="auto", progress=False).fit()
    assert isinstance(embedder.network(), LoadedBackbone)
    assert "openvino cannot be imported" in caplog.text and "embedded with Keras" in caplog.text
    with pytest.raises(BackboneError, match="openvino cannot be imported.*pip install openvino.*--image-runtime keras"):
        ImageEmbedder(str(tiny_backbone), runtime="openvino").fit()


def test_an_unknown_runtime_is_refused_before_any_network_is_built(tiny_backbone):
    with pytest.raises(BackboneError, match="unknown image runtime 'tensorrt': expected one of auto, openvino, keras"):
        ImageEmbedder(str(tiny_backbone), runtime="tensorrt").fit()


def test_a_model_pickled_before_runtimes_existed_loads_with_auto(tiny_backbone):
    state = pickle.loads(pickle.dumps(ImageEmbedder(str(tiny_backbone), runtime="keras").fit())).__dict__.copy()
    del state["runtime"]  # the state such a pickle holds
    restored = ImageEmbedder.__new__(ImageEmbedder)
    restored.__setstate__(state)  # what unpickling does
    assert restored.get_params()["runtime"] == "auto" and restored.fingerprint_ == state["fingerprint_"]


@needs_openvino
def test_openvino_splits_a_batch_among_its_streams_and_threads_take_turns(tiny_backbone, tmp_path):
    embedder = ImageEmbedder(str(tiny_backbone), cache_dir=str(tmp_path), runtime="openvino", progress=False).fit()
    network = embedder.network()
    batches = [np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3)).astype(np.float32)
               for seed, n in enumerate((1, 2, 7, 32))]  # fewer rows than streams, uneven splits, a full batch
    alone = [network.embed(batch[i:i + 1])[0] for batch in batches for i in range(len(batch))]
    together = np.concatenate([network.embed(batch) for batch in batches])
    np.testing.assert_allclose(together, np.stack(alone), atol=1e-5)  # each row's vector, in its row
    with ThreadPoolExecutor(4) as pool:  # one compiled model shared by a server's threads
        concurrent = list(pool.map(network.embed, batches * 4))
    for got, batch in zip(concurrent, batches * 4, strict=True):
        np.testing.assert_allclose(got, network.embed(batch), atol=1e-6)
