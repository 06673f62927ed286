"""The image branch on real files: a tiny random Keras CNN saved as a .keras backbone, and the shared MobileNetV2."""

from __future__ import annotations

import logging
import pickle
import socket

import numpy as np
import pytest
from PIL import Image

from modeling.backbones import BackboneError
from modeling.image import ImageEmbedder, read_photo
from shopstyle_spider import config


@pytest.fixture
def photos(tmp_path):
    """Three decodable photos (one a duplicate of another's bytes), and the kinds of file that are not photos."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    paths = {}
    for name, size in (("red", (60, 80)), ("blue", (80, 60)), ("grey", (40, 40))):
        pixels = rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)
        pixels[..., {"red": 0, "blue": 2, "grey": 1}[name]] = 250
        Image.fromarray(pixels).save(folder / f"{name}.jpg", quality=90)
        paths[name] = str(folder / f"{name}.jpg")
    (folder / "copy.jpg").write_bytes((folder / "red.jpg").read_bytes())
    paths["copy"] = str(folder / "copy.jpg")
    (folder / "page.jpg").write_bytes(b"<html><body>Not found</body></html>")
    paths["html"] = str(folder / "page.jpg")
    (folder / "cut.jpg").write_bytes((folder / "blue.jpg").read_bytes()[:200])
    paths["truncated"] = str(folder / "cut.jpg")
    paths["absent"] = str(folder / "absent.jpg")
    return paths


def test_read_photo_pads_to_a_square_and_refuses_what_is_not_an_image(photos):
    pixels = read_photo(photos["red"], 32)
    assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8
    assert (pixels[:, 0] == 255).all() and (pixels[:, -1] == 255).all()  # a 60x80 portrait: white left and right
    for kind in ("html", "truncated", "absent"):
        with pytest.raises(ValueError, match="not a usable image"):
            read_photo(photos[kind], 32)


def test_embeddings_are_per_photo_and_nan_where_no_usable_photo(tiny_backbone, photos, tmp_path, caplog):
    embedder = ImageEmbedder(str(tiny_backbone), batch_size=2, cache_dir=str(tmp_path / "cache"), progress=False)
    embedder.fit()
    order = ["red", "blue", "html", "grey", "truncated", "absent", "copy"]
    with caplog.at_level(logging.INFO, logger="modeling.image"):
        vectors = embedder.transform([photos[k] for k in order] + [None, ""])
    assert vectors.shape == (9, embedder.n_features_out_) == (9, 128)
    usable = ~np.isnan(vectors).any(axis=1)
    assert usable.tolist() == [True, True, False, True, False, False, True, False, False]
    np.testing.assert_array_equal(vectors[0], vectors[6])  # same bytes, same vector
    assert not np.allclose(vectors[0], vectors[1])
    assert "3 new photos embedded, 0 from the cache" in caplog.text
    assert "3 of 7 photos could not be read or decoded" in caplog.text



@pytest.mark.parametrize("order", [["red", "html", "blue", "grey", "truncated"],  # the last batch all bad
                                   ["html", "truncated", "red", "grey", "blue"]],  # the first all bad, the last short
                         ids=["bad last", "bad first"])
def test_every_network_call_has_one_shape_and_blank_padding_changes_no_vector(tiny_backbone, photos, order):
    """A failed photo or a short last batch is padded with blank images (a new input shape would retrace the
    network); the padding rows are dropped and each photo's vector is the one it gets embedded alone, in its row,
    whichever batches had nothing to embed."""
    embedder = ImageEmbedder(str(tiny_backbone), batch_size=2, progress=False).fit()
    network = embedder.network()
    shapes = []
    real_embed_batches = network.embed_batches

    def recording_embed_batches(batches):  # a spy on what reaches the real network, which still does the work
        def seen():
            for batch in batches:
                shapes.append(batch.shape)
                yield batch
        return real_embed_batches(seen())

    network.embed_batches = recording_embed_batches
    vectors = embedder.transform([photos[k] for k in order])
    network.embed_batches = real_embed_batches
    assert [shape[0] for shape in shapes] == [2, 2]  # the all-bad batch makes no call at all
    for row, kind in enumerate(order):
        if kind in ("html", "truncated"):
            assert np.isnan(vectors[row]).all()
        else:
            alone = network.embed(read_photo(photos[kind], network.input_size)[None])[0]
            np.testing.assert_allclose(vectors[row], alone, rtol=1e-5, atol=1e-5)


def test_a_second_run_embeds_nothing_and_a_pickled_embedder_holds_no_network(tiny_backbone, photos, tmp_path, caplog):
    cache = str(tmp_path / "cache")
    first = ImageEmbedder(str(tiny_backbone), cache_dir=cache, progress=False).fit()
    paths = [photos["red"], photos["blue"], photos["grey"]]
    expected = first.transform(paths)
    restored = pickle.loads(pickle.dumps(first))
    assert "_loaded" not in restored.__dict__
    with caplog.at_level(logging.INFO, logger="modeling.image"):
        again = restored.transform(paths)
    np.testing.assert_array_equal(again, expected)
    assert "0 new photos embedded, 3 from the cache" in caplog.text
    assert "_loaded" not in restored.__dict__  # everything came from the cache: the network was not even built


def test_a_changed_backbone_file_is_refused(tiny_backbone, tmp_path, photos):
    copy = tmp_path / "backbone.keras"
    copy.write_bytes(tiny_backbone.read_bytes())
    embedder = pickle.loads(pickle.dumps(ImageEmbedder(str(copy), progress=False).fit()))
    copy.write_bytes(copy.read_bytes() + b"\0")
    with pytest.raises(BackboneError, match="not the network this model was trained with"):
        embedder.transform([photos["red"]])


def test_bad_backbone_specs_fail_at_fit_with_advice(tmp_path):
    with pytest.raises(BackboneError, match="does not exist.*mobilenet_v2_imagenet.keras"):
        ImageEmbedder(str(tmp_path / "nothing.keras")).fit()
    with pytest.raises(BackboneError, match="unknown image backbone 'vgg99'"):
        ImageEmbedder("vgg99").fit()
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a zip")
    with pytest.raises(BackboneError, match="junk.keras: not a loadable Keras model"):
        ImageEmbedder(str(junk)).fit()


def _online() -> bool:
    try:
        socket.create_connection(("storage.googleapis.com", 443), timeout=3).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(_online(), reason="this machine can download ImageNet weights, so there is no offline failure")
def test_a_named_backbone_offline_fails_at_once_saying_what_to_pass():
    with pytest.raises(BackboneError, match=r"cannot download the ImageNet weights of inception_v3.*"
                                            r"--image-backbone .*mobilenet_v2_imagenet\.keras"):
        ImageEmbedder("inception_v3").fit()


def test_random_weights_build_a_named_architecture_offline():
    embedder = ImageEmbedder("mobilenet_v2", weights=None, progress=False).fit()
    assert embedder.n_features_out_ == 1280 and embedder.input_size_ == 224


def test_the_shared_mobilenet_embeds_real_catalog_photos(fashion_dir):
    backbone = config.mobilenet_v2_backbone()
    if not backbone.is_file():
        pytest.fail(f"the shared backbone is missing at {backbone} (set SHARED_DIR)")
    paths = sorted(str(p) for p in (fashion_dir / "images").glob("*.jpg"))[:6]
    vectors = ImageEmbedder(str(backbone), batch_size=4, runtime="keras", progress=False).fit().transform(paths)
    assert vectors.shape == (6, 1280)
    assert np.isfinite(vectors).all() and (vectors >= 0).all()  # pooled ReLU6 features
    assert len({v.tobytes() for v in vectors}) == 6
