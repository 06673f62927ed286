"""Training, saving, reloading and predicting on a real crawl of the synthetic sandbox, with a tiny Keras backbone."""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing

import joblib
import numpy as np
import pandas as pd
import pytest
import sklearn.base
from PIL import Image
from sklearn.base import clone
from sklearn.feature_extraction.text import TfidfVectorizer

from modeling import predict, store, train
from modeling.data import DataError, load_products, select_categories, split_of
from modeling.filing import DECISIONS, decide
from modeling.image import ImageEmbedder
from modeling.persistence import ModelFileError, load_model
from modeling.review.predicting import ranked_categories
from modeling.stacking import ProductClassifier, _restricted, out_of_fold_splits
from modeling.text import WordCharNgrams, clean_text, make_text_pipeline
from modeling.train import folds_or_fraction, targets_argument
from shopstyle_spider import schema
from shopstyle_spider.config import PROJECT_ROOT


def test_the_split_is_a_fixed_80_10_10_function_of_the_id():
    splits = [split_of(i) for i in range(20_000)]
    shares = {name: splits.count(name) / len(splits) for name in ("train", "validation", "test")}
    assert abs(shares["train"] - 0.8) < 0.01 and abs(shares["validation"] - 0.1) < 0.01
    assert abs(shares["test"] - 0.1) < 0.01
    assert [split_of(i) for i in range(50)] == splits[:50] and split_of("50") == splits[50]


def test_real_shopstyle_descriptions_come_out_as_plain_text(sample_dir):
    text = (sample_dir / "products.jsonl").read_text(encoding="utf-8")
    records = [json.loads(line) for line in text.splitlines()]
    bulleted = next(r["description"] for r in records if "</li><li>" in r["description"])
    cleaned = [clean_text(r["description"]) for r in records]
    assert not any("<li>" in c or "&comma;" in c or "&quot;" in c or "  " in c for c in cleaned)
    first, second = bulleted.split("</li><li>")[0:2]
    assert f"{clean_text(first)} {clean_text(second)}" in clean_text(bulleted)  # bullets stay separate words


def test_words_cut_once_give_the_character_features_of_char_wb_on_real_text(sample_dir):
    records = [json.loads(line) for line in (sample_dir / "products.jsonl").read_text(encoding="utf-8").splitlines()]
    texts = [f"{clean_text(r['name'])} {clean_text(r['description'])}" for r in records]
    texts += ["  Ünïcode\tTABS and  double  spaces ", "", "x"]
    options = {"min_df": 2, "sublinear_tf": True, "dtype": np.float32}
    reference = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), **options).fit(texts[:500])
    ours = TfidfVectorizer(analyzer=WordCharNgrams((2, 5)), **options).fit(texts[:500])
    assert ours.vocabulary_ == reference.vocabulary_
    assert (ours.transform(texts) != reference.transform(texts)).nnz == 0
    restored = pickle.loads(pickle.dumps(ours))  # without its memory of words, same features
    assert (restored.transform(texts[500:]) != reference.transform(texts[500:])).nnz == 0


@pytest.fixture(scope="module")
def crawl_copy(synthetic_crawl, tmp_path_factory):
    """A private copy of the synthetic crawl's database (training writes experiments into it)."""
    source, images, _ = synthetic_crawl
    db = tmp_path_factory.mktemp("training") / "crawl.db"
    with sqlite3.connect(source) as original, sqlite3.connect(db) as copy:
        original.backup(copy)
    return db, images


def test_products_load_with_parents_photos_and_splits(crawl_copy):
    db, images = crawl_copy
    frame = load_products(db, images)
    assert len(frame) == 27 * 50 and frame["category"].nunique() == 27
    assert set(frame["parent"]) >= {"jeans", "dresses"} and frame["path"].str.startswith("women/").all()
    with_photo = frame["image_path"].dropna()
    assert all(p.startswith(str(images)) for p in with_photo)
    with sqlite3.connect(db) as connection:
        assert len(with_photo) == connection.execute("SELECT count(*) FROM products WHERE image_status = 'ok'") \
            .fetchone()[0] < 0.9 * len(frame)  # the synthetic catalog's gaps
    assert frame["image_path"].map(type).isin([str, type(None)]).all()  # never NaN: modeling.fields
    assert frame["description"].map(type).eq(str).all() and (frame["description"] == "").any()
    chosen = select_categories(frame, ["bootcut-jeans", "skinny-jeans"], min_products=5)
    assert set(chosen["category"]) == {"bootcut-jeans", "skinny-jeans"}
    with pytest.raises(DataError, match="not in the crawl database: no-such-leaf"):
        select_categories(frame, ["bootcut-jeans", "no-such-leaf"])
    with pytest.raises(DataError, match="fewer than 2 categories"):
        select_categories(frame, min_products=1000)


@pytest.fixture(scope="module")
def trained(crawl_copy, tiny_backbone, tmp_path_factory):
    """One `modeling.train` run: text + the tiny image backbone, stacked."""
    db, images = crawl_copy
    out = tmp_path_factory.mktemp("models")
    code = train.main(["--db", str(db), "--images", str(images), "--image-backbone", str(tiny_backbone),
                       "--out", str(out), "--cache-dir", str(out / "cache"), "--cv", "3", "--min-products", "5",
                       "--no-progress", "--name", "synthetic test", "--keep", "stacked"])
    assert code == 0
    return db, images, out


def test_training_records_the_experiment_its_predictions_and_a_model_card(trained):
    db, images, out = trained
    with sqlite3.connect(db) as connection:
        (experiment_id, name, parameters, versions, metrics, model_path), = connection.execute(
            "SELECT id, name, parameters, versions, metrics, model_path FROM experiments")
        predictions = pd.read_sql_query("SELECT * FROM predictions", connection)
    frame = load_products(db, images)
    held_out = frame[frame["split"] != "train"]
    assert name == "synthetic test" and model_path == str(out / f"{experiment_id}.joblib")
    assert sorted(predictions["product_id"]) == sorted(held_out["id"])
    assert dict(zip(predictions["product_id"], predictions["split"], strict=True)) == dict(
        zip(held_out["id"], held_out["split"], strict=True))
    assert predictions["score"].between(0, 1).all() and predictions["text_category"].notna().all()
    assert json.loads(versions)["scikit-learn"] == sklearn.__version__
    assert json.loads(parameters)["image_backbone"].endswith("tiny.keras")
    metrics = json.loads(metrics)
    test = metrics["test"]
    assert test["stacked"]["n"] == (held_out["split"] == "test").sum()
    assert test["text"]["accuracy"] > 0.6 and test["stacked"]["accuracy"] > 0.6  # 27 leaves: chance is 0.04
    assert {"image", "stacked_with_photo", "text_with_photo"} <= set(test)
    observed = (predictions.query("split == 'test'").eval("true_category == predicted_category")).mean()
    assert observed == pytest.approx(test["stacked"]["accuracy"])
    card = json.loads((out / f"{experiment_id}.json").read_text())
    assert card["metrics"] == {k: v for k, v in metrics.items() if k not in ("filing", "champion")}
    assert card["champion"] is metrics["champion"] is None  # nothing was in service to compare with
    assert card["filing"] == metrics["filing"] and set(card["filing"]) == {"0.95", "0.98", "0.99", "0.995"}
    assert card["categories"]["bootcut-jeans"] == "jeans"


def test_a_photo_branch_that_does_not_help_is_dropped(crawl_copy, tmp_path, caplog):
    """A backbone whose every embedding is zero cannot beat text: training says so and saves the text-only model."""
    import keras

    inputs = keras.Input((16, 16, 3))
    blind = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, kernel_initializer="zeros")(inputs))
    keras.Model(inputs, blind).save(tmp_path / "blind.keras")
    db, images = crawl_copy
    with caplog.at_level(logging.WARNING, logger="modeling.train"):
        assert train.main(["--db", str(db), "--images", str(images), "--image-backbone", str(tmp_path / "blind.keras"),
                           "--out", str(tmp_path / "models"), "--cache-dir", str(tmp_path / "cache"), "--cv", "3",
                           "--categories", "bootcut-jeans,skinny-jeans,day-dresses,evening-dresses",
                           "--no-progress"]) == 0
    assert "stacking does not beat text alone on validation" in caplog.text
    card = json.loads(next((tmp_path / "models").glob("*.json")).read_text())
    assert card["parameters"]["model"] == "text only (stacking lost on validation)"
    assert set(card["metrics"]["test"]) == {"stacked", "text"}
    model = load_model(next((tmp_path / "models").glob("*.joblib")))
    assert model.image is None and model.meta_image_ is None
    # what training kept is exactly a model fitted without photos from the start
    frame = load_products(db, images)
    frame = frame[frame["category"].isin(model.classes_)]
    train_rows = frame[frame["split"] == "train"]
    refitted = clone(model).fit(train_rows, train_rows["category"])
    np.testing.assert_allclose(model.predict_proba(frame), refitted.predict_proba(frame), atol=1e-9)


def test_training_stops_before_fitting_when_a_split_it_reports_on_is_empty(tmp_path, capsys):
    """A small --categories choice can leave the validation or test split empty: said at once, not after the fit."""
    db = tmp_path / "crawl.db"
    schema.connect(db).close()
    ids = [i for i in range(1, 400) if split_of(i) == "train"][:24]
    now = "2026-12-01T00:00:00"
    with closing(sqlite3.connect(db)) as connection, connection:
        connection.executemany("INSERT INTO categories (id, name, parent_id, is_leaf, path, first_seen, last_seen) "
                               "VALUES (?, ?, 'women', 1, ?, ?, ?)",
                               [(leaf, leaf, f"women/{leaf}", now, now) for leaf in ("boots", "dresses")])
        connection.executemany(
            "INSERT INTO products (id, name, category_id, image_status, first_seen, last_seen) "
            "VALUES (?, ?, ?, 'none', ?, ?)",
            [(i, f"{leaf} {i}", leaf, now, now) for n, i in enumerate(ids) for leaf in [("boots", "dresses")[n % 2]]])
    assert train.main(["--db", str(db), "--image-backbone", "none", "--out", str(tmp_path / "models"),
                       "--no-progress"]) == 2
    assert "no product of the chosen categories is in the validation or test split (24 products in all)" in \
        capsys.readouterr().err
    assert not (tmp_path / "models").exists()


def test_a_failed_commit_leaves_no_model_file(crawl_copy, tmp_path, monkeypatch, capsys):
    """Another process holds the database's write lock through the whole run: the experiment cannot be recorded,
    training says so, and no model file is left (the next run would reuse the id it would have had)."""
    db, images = crawl_copy
    store.connect(db).close()  # modeling's tables exist: only the experiment's own write needs the lock
    monkeypatch.setattr(schema, "BUSY_TIMEOUT_S", 0.5)
    out = tmp_path / "models"
    with closing(sqlite3.connect(db, isolation_level=None)) as holder:
        holder.execute("BEGIN IMMEDIATE")
        code = train.main(["--db", str(db), "--images", str(images), "--image-backbone", "none", "--out", str(out),
                           "--categories", "bootcut-jeans,skinny-jeans,day-dresses", "--min-products", "5",
                           "--no-progress"])
        holder.execute("ROLLBACK")
    assert code == 2
    assert "the experiment could not be recorded, so no model was saved: database is locked" in capsys.readouterr().err
    assert out.is_dir() and list(out.iterdir()) == []


def test_a_saved_model_predicts_the_same_in_a_fresh_process_without_loading_keras(trained, tmp_path):
    db, images, out = trained
    model_path = next(out.glob("*.joblib"))
    frame = load_products(db, images)
    sample = frame[frame["split"] == "test"].head(40)[["id", "name", "description", "image_path"]]
    sample.loc[sample.index[:5], "image_path"] = None  # some products come without a photo
    sample.to_json(tmp_path / "sample.jsonl", orient="records", lines=True)
    expected = joblib.load(model_path).predict_proba(sample)
    script = (
        "import sys, joblib, numpy, pandas\n"
        f"model = joblib.load({str(model_path)!r})\n"
        "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules, 'unpickling imported Keras'\n"
        f"X = pandas.read_json({str(tmp_path / 'sample.jsonl')!r}, lines=True)\n"
        f"numpy.save({str(tmp_path / 'proba.npy')!r}, model.predict_proba(X))\n"
        "print(type(model).__name__, list(model.predict(X[:2])))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ProductClassifier [")
    np.testing.assert_allclose(np.load(tmp_path / "proba.npy"), expected, atol=1e-6)
    assert np.allclose(expected.sum(axis=1), 1)


def test_predict_writes_a_line_per_product_and_names_every_bad_record(trained, tmp_path, capsys):
    db, images, out = trained
    model_path = next(out.glob("*.joblib"))
    photo = load_products(db, images)["image_path"].dropna().iloc[0]
    lines = [
        json.dumps({"id": 1, "name": "Indigo bootcut jeans", "description": "<p>Stretch&nbsp;denim</p>"}),
        "{not json",
        json.dumps({"id": 3, "description": "no name"}),
        json.dumps({"id": 4, "name": "Maxi dress", "image_path": 42}),
        json.dumps(["a", "list"]),
        "",
        json.dumps({"id": 7, "name": "<script>alert(1)</script> \u0000\u202e\ud800 dress",
                    "image_path": "nowhere.jpg"}),
        json.dumps({"id": 8, "name": "Skinny jeans", "description": None, "image_path": photo}),
        json.dumps({"name": "no id"}),
    ]
    source = tmp_path / "products.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    output = tmp_path / "out.jsonl"
    assert predict.main(["--model", str(model_path), "--input", str(source), "--output", str(output),
                         "--no-progress"]) == 0
    results = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    errors = {r["line"]: r for r in results if "error" in r}
    assert {n: r["error"].split(" (")[0] for n, r in errors.items()} == {
        2: "not JSON", 3: "no name", 4: "image_path is a int, not a path", 5: "a JSON list, not an object",
        9: "no id"}
    assert errors[3]["id"] == 3
    good = {r["id"]: r for r in results if "error" not in r}
    assert set(good) == {1, 7, 8}
    assert good[1]["category"] in {"bootcut-jeans", "flare-jeans", "skinny-jeans", "distressed-jeans"}
    assert good[1]["parent"] == "jeans" and not good[1]["photo_used"]
    assert good[7]["photo_used"] is False and good[8]["photo_used"] is True
    for r in good.values():
        scores = [r["score"]] + [a["score"] for a in r["alternatives"]]
        assert len(r["alternatives"]) == 3 and scores == sorted(scores, reverse=True) and sum(scores) <= 1 + 1e-6
    assert "3 products predicted, 5 records with errors" in capsys.readouterr().err


def test_predict_reads_csv_and_a_whole_crawl_database(trained, tmp_path):
    db, images, out = trained
    model_path = next(out.glob("*.joblib"))
    source = tmp_path / "products.csv"
    source.write_text('id,name,description\n1,"Pleated midi skirt, navy",\n2,too,many,fields,here\n',
                      encoding="utf-8")
    output = tmp_path / "csv.jsonl"
    assert predict.main(["--model", str(model_path), "--input", str(source), "--output", str(output),
                         "--no-progress"]) == 0
    first, second = (json.loads(line) for line in output.read_text().splitlines())
    assert first["id"] == "1" and first["category"] and second == {
        "line": 3, "id": None, "error": "5 fields where the header has 3"}
    output = tmp_path / "db.jsonl"
    assert predict.main(["--model", str(model_path), "--db", str(db), "--images", str(images), "--output",
                         str(output), "--no-progress"]) == 0
    results = [json.loads(line) for line in output.read_text().splitlines()]
    frame = load_products(db, images)
    assert [r["id"] for r in results] == frame["id"].tolist() and not [r for r in results if "error" in r]
    assert [r["photo_used"] for r in results] == frame["image_path"].notna().tolist()


def test_predict_db_finds_the_crawls_photos_from_anywhere_and_a_moved_store_is_said_loudly(trained, tmp_path,
                                                                                          monkeypatch, capsys):
    """The crawl records its IMAGES_STORE: `predict --db` with no --images, from another working directory, reads the
    photos there; once the store is moved, every product is read from text alone and the summary says so loudly,
    naming photos; an explicit --images still wins."""
    db, images, out = trained
    model_path = str(next(out.glob("*.joblib")))
    assert schema.recorded_image_store(db) == str(images.resolve())  # what the crawl itself recorded
    with_photo = load_products(db, images)["image_path"].notna().tolist()
    assert any(with_photo)
    monkeypatch.chdir(tmp_path)  # nowhere near data/images or the crawl's folder
    output = tmp_path / "found.jsonl"
    assert predict.main(["--model", model_path, "--db", str(db), "--output", str(output), "--no-progress"]) == 0
    assert [json.loads(line)["photo_used"] for line in output.read_text().splitlines()] == with_photo
    err = capsys.readouterr().err
    assert f"photos: {sum(with_photo)} of the {sum(with_photo)} the crawl stored read from {images.resolve()}" in err
    assert "WARNING" not in err

    moved_db, store = tmp_path / "moved.db", tmp_path / "store"
    with sqlite3.connect(db) as original, sqlite3.connect(moved_db) as copy:
        original.backup(copy)
    shutil.copytree(images, store)
    with closing(schema.connect(moved_db)) as connection, connection.begin():
        schema.record_image_store(connection, str(store), "2026-12-07T00:00:00+00:00")
    store.rename(tmp_path / "elsewhere")
    assert predict.main(["--model", model_path, "--db", str(moved_db), "--output", str(output), "--no-progress"]) == 0
    assert not any(json.loads(line)["photo_used"] for line in output.read_text().splitlines())
    err = capsys.readouterr().err
    assert f"modeling.predict: WARNING: photos: 0 of the {sum(with_photo)} the crawl stored read from {store}; " \
           f"{sum(with_photo)} cannot be read ({store / 'full'}" in err
    assert predict.main(["--model", model_path, "--db", str(moved_db), "--images", str(tmp_path / "elsewhere"),
                         "--output", str(output), "--no-progress"]) == 0
    assert [json.loads(line)["photo_used"] for line in output.read_text().splitlines()] == with_photo
    assert "WARNING" not in capsys.readouterr().err


def test_predict_exits_1_when_every_record_failed_and_names_the_commonest_reason(trained, tmp_path, capsys):
    _, _, out = trained
    source = tmp_path / "bad.jsonl"
    source.write_text('{"id": 1}\n{"id": 2, "name": ""}\n{"id": 3, "name": "Tee", "image_path": [1]}\n',
                      encoding="utf-8")
    assert predict.main(["--model", str(next(out.glob("*.joblib"))), "--input", str(source), "--output",
                         str(tmp_path / "out.jsonl"), "--no-progress"]) == 1
    assert ("0 products predicted, 3 records with errors (most common: 'no name (a non-empty string is required)', "
            "2 records)") in capsys.readouterr().err


def test_a_missing_photo_is_the_same_whatever_its_spelling(trained):
    """None (JSON), NaN (pandas 3 reads a missing string back as NaN) and "" (CSV) all mean a text-only product."""
    _, _, out = trained
    model = load_model(next(out.glob("*.joblib")))
    rows = [predict.check_record({"id": 1, "name": "Indigo bootcut jeans", "description": description,
                                  "image_path": missing}, None)[0]
            for missing, description in ((None, None), (float("nan"), float("nan")), ("", ""), (pd.NA, pd.NA))]
    assert all(row["image_path"] is None and row["description"] == "" for row in rows)
    lines = list(predict.prediction_lines(model, rows))
    assert len({json.dumps({k: v for k, v in line.items() if k != "id"}) for line in lines}) == 1
    assert not lines[0]["photo_used"]


def test_the_review_apps_suggestions_see_a_suspects_stored_photo_and_only_inside_the_store(trained, tmp_path):
    """A suspect card carries the photo path as the crawl stored it (relative to the image store); the model's
    suggestions for it read that photo, and a path leading out of the store is ignored (text only)."""
    db, images, out = trained
    model = load_model(next(out.glob("*.joblib")))
    with sqlite3.connect(db) as connection:
        name, description, stored = connection.execute(
            "SELECT name, description, image_path FROM products WHERE image_status = 'ok' ORDER BY id").fetchone()
    (tmp_path / "outside.jpg").write_bytes((images / stored).read_bytes())
    payload = {"name": name, "description": description}
    with_photo, without, outside = ranked_categories(model, [{**payload, "image_path": stored}, payload, {
        **payload, "image_path": f"{os.path.relpath(tmp_path, images)}/outside.jpg"}], images)
    row = {"id": 0, "name": name, "description": description, "image_path": str(images / stored)}
    expected = next(predict.prediction_lines(model, [row]))
    assert expected["photo_used"] and with_photo[0] == (expected["category"], expected["score"])
    assert with_photo != without and outside == without


def test_predict_embeds_new_photos_on_the_runtime_it_is_given(trained, tmp_path, monkeypatch, capsys):
    db, images, out = trained
    model_path = next(out.glob("*.joblib"))
    photo = tmp_path / "new.jpg"  # not in the embedding cache: predicting it needs the network
    Image.fromarray(np.random.default_rng(7).integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(photo)
    source = tmp_path / "products.jsonl"
    source.write_text(json.dumps({"id": 1, "name": "Maxi dress", "image_path": str(photo)}) + "\n", encoding="utf-8")
    # None in sys.modules makes `import openvino` fail as on a machine without it (Python's own mechanism)
    monkeypatch.setitem(sys.modules, "openvino", None)
    assert predict.main(["--model", str(model_path), "--input", str(source), "--image-runtime", "openvino",
                         "--no-progress"]) == 2
    assert "openvino cannot be imported" in capsys.readouterr().err
    output = tmp_path / "out.jsonl"
    assert predict.main(["--model", str(model_path), "--input", str(source), "--image-runtime", "keras",
                         "--output", str(output), "--no-progress"]) == 0
    assert json.loads(output.read_text())["photo_used"] is True


def test_a_damaged_model_file_is_named_in_a_clear_error(trained, tmp_path, capsys):
    _, _, out = trained
    model_path = next(out.glob("*.joblib"))
    broken = tmp_path / "broken.joblib"
    broken.write_bytes(model_path.read_bytes()[:1000])
    with pytest.raises(ModelFileError, match=r"broken\.joblib: not a readable model file"):
        load_model(broken)
    source = tmp_path / "p.jsonl"
    source.write_text('{"id": 1, "name": "jeans"}\n')
    assert predict.main(["--model", str(broken), "--input", str(source), "--no-progress"]) == 2
    assert "broken.joblib: not a readable model file" in capsys.readouterr().err


def test_a_model_from_another_scikit_learn_version_warns_clearly(tmp_path, monkeypatch):
    X = pd.DataFrame({"name": ["red dress", "blue dress", "black boots", "brown boots"] * 3})
    model = ProductClassifier(cv=2).fit(X, ["dress", "dress", "boots", "boots"] * 3)
    monkeypatch.setattr(sklearn.base, "__version__", "1.0.0")  # what BaseEstimator.__getstate__ records
    joblib.dump(model, tmp_path / "old.joblib")
    monkeypatch.undo()
    with pytest.warns(UserWarning, match=r"old\.joblib was trained with scikit-learn 1\.0\.0 and this is"):
        loaded = load_model(tmp_path / "old.joblib")
    assert loaded.predict(pd.DataFrame({"name": ["green dress"]})).tolist() == ["dress"]


def test_the_classifier_is_a_cloneable_estimator_that_serves_products_without_photos(tiny_backbone):
    model = ProductClassifier(text=make_text_pipeline(alpha=1e-4), image=ImageEmbedder(str(tiny_backbone)), cv=3)
    copy = clone(model)
    params = copy.get_params()
    assert params["text__classifier__alpha"] == 1e-4 and params["image__backbone"].endswith(".keras")
    X = pd.DataFrame({"name": ["wool scarf", "silk scarf", "leather belt", "canvas belt"] * 3,
                      "description": ["warm", "", "<b>brown</b>", None] * 3})
    fitted = copy.fit(X, ["scarves", "scarves", "belts", "belts"] * 3)
    assert fitted.meta_image_ is None  # no product had a photo: the image branch stays out
    stacked, text, image = fitted.predict_branches(pd.DataFrame({"name": ["cashmere scarf"]}))
    assert np.isnan(image).all() and fitted.classes_[stacked.argmax()] == "scarves"
    with pytest.raises(TypeError, match="expected a pandas DataFrame"):
        fitted.predict([["cashmere scarf"]])


def test_a_held_out_fraction_holds_each_product_out_at_most_once_and_alike_for_both_branches():
    y = np.array(list("abcd") * 10)
    (train, held), = out_of_fold_splits(y, 0.25, random_state=0)
    assert len(held) == 10 and set(y[held]) == set("abcd")  # stratified
    assert sorted(np.concatenate([train, held]).tolist()) == list(range(40))
    usable = np.arange(40) % 3 != 0  # products with a photo
    (image_train, image_held), = _restricted([(train, held)], usable)
    photo_rows = np.flatnonzero(usable)
    assert sorted(photo_rows[image_held]) == sorted(set(held) & set(photo_rows))
    assert sorted(photo_rows[image_train]) == sorted(set(train) & set(photo_rows))
    with pytest.raises(ValueError, match="between 0 and 1"):
        out_of_fold_splits(y, 1.5, random_state=0)

    X = pd.DataFrame({"name": ["wool scarf", "silk scarf", "leather belt", "canvas belt"] * 10})
    labels = ["scarves", "scarves", "belts", "belts"] * 10
    model = ProductClassifier(cv=0.25).fit(X, labels)
    assert model.predict(pd.DataFrame({"name": ["cashmere scarf", "suede belt"]})).tolist() == ["scarves", "belts"]


@pytest.mark.parametrize(("text", "expected"), [("0.99", (0.99,)), ("0.98,0.995", (0.98, 0.995)), ("0.97", None),
                                               ("high", None)])
def test_train_promote_targets_are_targets_the_card_has(text, expected):
    if expected is None:
        with pytest.raises(argparse.ArgumentTypeError):
            targets_argument(text)
    else:
        assert targets_argument(text) == expected


@pytest.mark.parametrize(("text", "expected"), [("5", 5), ("0.2", 0.2), ("1", None), ("1.5", None), ("x", None)])
def test_train_cv_takes_folds_or_a_fraction(text, expected):
    if expected is None:
        with pytest.raises(argparse.ArgumentTypeError):
            folds_or_fraction(text)
    else:
        assert folds_or_fraction(text) == expected and type(folds_or_fraction(text)) is type(expected)


def test_predict_files_each_product_by_the_thresholds_the_card_promises(trained, tmp_path, capsys):
    db, images, out = trained
    model_path = next(out.glob("*.joblib"))
    card = json.loads(model_path.with_suffix(".json").read_text())
    thresholds = card["filing"]["0.95"]
    frame = load_products(db, images)
    # computed on every product the model did not learn from: the training products out of fold (--cv 3 holds each
    # out once) and the validation split, never the test split
    assert card["guarantee"]["products"] == (frame["split"] != "test").sum()
    assert card["guarantee"]["validation"] == (frame["split"] == "validation").sum()
    # the synthetic catalog's noisy leaves (about 78% right) promise nothing at the leaf, and the card says why;
    # their parents promise 95%
    assert thresholds["leaf"] is None and "surest products are only" in thresholds["leaf_never"]
    assert thresholds["parent"] is not None and thresholds["parent_bound"] >= 0.95
    output = tmp_path / "decided.jsonl"
    assert predict.main(["--model", str(model_path), "--db", str(db), "--images", str(images), "--output",
                         str(output), "--target-accuracy", "0.95", "--no-progress"]) == 0
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert {line["decision"] for line in lines} <= set(DECISIONS)
    expected = decide([r["score"] for r in lines], [r["parent_score"] for r in lines], thresholds)

    def on_edge(r):  # the lines round scores to 6 places: a product scoring the threshold itself may round below it
        return any(abs(r[key] - (thresholds[level] or -1)) < 1e-6 for key, level in (("score", "leaf"),
                                                                                     ("parent_score", "parent")))
    kept = [not on_edge(r) for r in lines]
    assert [r["decision"] for r, k in zip(lines, kept, strict=True) if k] == expected[kept].tolist()
    assert all(r["parent_score"] >= r["score"] - 1e-6 for r in lines)  # a parent sums its leaves, the best included
    filed = [r for r in lines if r["decision"] == "parent"]
    assert filed and all(r["parent_score"] >= thresholds["parent"] - 1e-6 for r in filed)  # rounded to 6 places
    assert "at 95.0% accuracy the leaf level never files: the " in capsys.readouterr().err
    # --levels leaf never files at the parent: here every product then goes to a person
    assert predict.main(["--model", str(model_path), "--db", str(db), "--images", str(images), "--output",
                         str(output), "--target-accuracy", "0.95", "--levels", "leaf", "--no-progress"]) == 0
    assert {json.loads(line)["decision"] for line in output.read_text().splitlines()} == {"review"}
    assert "the parent level never files: left out by --levels" in capsys.readouterr().err
    # a model whose card lacks the thresholds is refused with a clear error, before any prediction
    bare = tmp_path / "bare.joblib"
    bare.write_bytes(model_path.read_bytes())
    capsys.readouterr()
    assert predict.main(["--model", str(bare), "--db", str(db), "--target-accuracy", "0.95", "--no-progress"]) == 2
    assert "bare.json: cannot read the model card" in capsys.readouterr().err
