"""The model registry (``modeling.registry``, ``python -m modeling.models``) on real trainings of the synthetic
crawl: each database's models in its own folder, the model in service what predict loads without --model."""

from __future__ import annotations

import json
import sqlite3

import pytest

from modeling import models, predict, registry, train
from modeling.filing import LEVELS, short_percent
from modeling.persistence import load_model

from .review_fixtures import copy_db

TEXT_ONLY = ["--image-backbone", "none", "--min-products", "5", "--no-progress"]


@pytest.fixture(scope="module")
def two_databases(synthetic_crawl, tmp_path_factory):
    """Two copies of the crawl, each trained once with the default --out, under one data folder."""
    source, images, _ = synthetic_crawl
    folder = tmp_path_factory.mktemp("registry")
    first, second = copy_db(source, folder / "first.db"), copy_db(source, folder / "second.db")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHOPSTYLE_DATA_DIR", str(folder / "data"))
        assert train.main(["--db", str(first), "--images", str(images), *TEXT_ONLY]) == 0
        first_model = registry.serving_path(first)
        before = first_model.read_bytes()
        assert train.main(["--db", str(second), "--images", str(images), *TEXT_ONLY]) == 0
        yield first, second, images, first_model, before, folder


def test_a_second_database_never_touches_the_first_ones_models(two_databases):
    first, second, _, first_model, before, folder = two_databases
    second_model = registry.serving_path(second)
    # both are experiment 1 of their database, each in a folder named for it
    assert first_model.name == second_model.name == "1.joblib"
    assert first_model.parent != second_model.parent
    assert first_model.parent == folder / "data" / "models" / registry.folder_name(first)
    assert first_model.read_bytes() == before and registry.serving_path(first) == first_model
    (entry,) = registry.entries(first)
    assert entry.path == first_model and entry.sha256 == registry.checksum(first_model)
    assert entry.labels == {"labels": "crawled"} and entry.in_service
    assert entry.promotions[0]["reason"] == "the database's first model" and entry.promotions[0]["replaces"] is None


def test_a_shared_out_folder_refuses_to_replace_another_databases_model(two_databases, tmp_path, capsys):
    first, second, images, *_ = two_databases
    third = copy_db(first, tmp_path / "third.db")
    out = registry.serving_path(first).parent  # where the first database's model 1 lives; third's next is 2
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "2.joblib").write_bytes(b"another database's model")
    assert train.main(["--db", str(third), "--images", str(images), "--out", str(shared), *TEXT_ONLY]) == 2
    assert (shared / "2.joblib").read_bytes() == b"another database's model"
    assert f"{shared / '2.joblib'} already exists, a model of another database" in capsys.readouterr().err
    assert not list(shared.glob(".pending-*")) and [e.experiment_id for e in registry.entries(third)] == [1]
    assert registry.serving_path(third) == out / "1.joblib"  # the copy's registry still names the first's file


def test_predict_uses_the_model_in_service_and_the_cli_promotes_saying_what_it_replaces(two_databases, tmp_path,
                                                                                      capsys):
    first, _, images, first_model, *_ = two_databases
    output = tmp_path / "out.jsonl"
    assert predict.main(["--db", str(first), "--images", str(images), "--output", str(output), "--no-progress"]) == 0
    assert len(output.read_text().splitlines()) > 1000
    capsys.readouterr()
    assert models.main(["--db", str(first), "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 1 and listed[0].startswith("*    1 ") and str(first_model) in listed[0]
    assert models.main(["--db", str(first), "show", "1"]) == 0
    shown = capsys.readouterr().out
    assert "model 1: text-only" in shown and "(in service)" in shown and "the database's first model" in shown
    assert models.main(["--db", str(first), "promote", "1"]) == 0
    assert capsys.readouterr().out.strip() == "model 1 is already in service"
    assert models.main(["--db", str(first), "promote", "7"]) == 2
    assert "no model 7 (there are 1)" in capsys.readouterr().err
    # a file changed after it was registered is not served
    changed = tmp_path / "changed.db"
    copy_db(first, changed)
    original = first_model.read_bytes()
    try:
        first_model.write_bytes(original + b"\0")
        assert models.main(["--db", str(changed), "current"]) == 2
        assert "is not the file that was registered" in capsys.readouterr().err
        assert predict.main(["--db", str(changed), "--output", str(output), "--no-progress"]) == 2
    finally:
        first_model.write_bytes(original)


def test_db_is_taken_before_or_after_the_subcommand(two_databases, capsys):
    """``models --db X list`` and ``models list --db X`` are the same command (people type both)."""
    first, _, _, first_model, *_ = two_databases
    for command in (["list"], ["current"], ["show", "1"]):
        assert models.main(["--db", str(first), *command]) == 0
        before = capsys.readouterr().out
        assert models.main([*command, "--db", str(first)]) == 0
        assert capsys.readouterr().out == before and str(first_model) in before, command


def test_show_says_in_words_where_a_level_never_files_and_gives_bounds_as_percentages(two_databases, capsys):
    first, *_ = two_databases
    card = json.loads(registry.entry(first, 1).card_path.read_text(encoding="utf-8"))
    never = {(target, level) for target, chosen in card["filing"].items() for level in LEVELS if chosen[level] is None}
    files = {(target, level) for target, chosen in card["filing"].items() for level in LEVELS} - never
    assert never and files  # the synthetic crawl is too small for some levels at some targets, not for all
    assert models.main(["--db", str(first), "show", "1"]) == 0
    shown = capsys.readouterr().out
    assert "None" not in shown
    for target, level in never:
        assert f"    {level} never ({card['filing'][target][f'{level}_never']})\n" in shown
    for target, level in files:
        chosen = card["filing"][target]
        assert (f"    {level} at a score >= {chosen[level]:.4f} (at least {short_percent(chosen[f'{level}_bound'])} "
                f"accurate with 95% confidence)\n") in shown
        assert str(chosen[f"{level}_bound"]) not in shown


def test_the_review_app_serves_the_model_in_service_when_not_given_one(two_databases, synthetic_crawl, tmp_path,
                                                                       capsys):
    import httpx

    from modeling.review.__main__ import main as review_main
    from modeling.review.process import ReviewProcess

    first, _, images, first_model, *_ = two_databases
    product = {"id": "p1", "name": "Distressed bootcut jeans", "description": "stretch denim"}
    expected = next(predict.prediction_lines(load_model(first_model), [{**product, "image_path": None}]))
    with ReviewProcess("--db", first, "--images", images) as app:
        answer = httpx.post(app.url + "/api/predict", json=[product])
        served = httpx.get(app.url + "/api/model").json()  # without --model it follows promotions
    assert served["experiment_id"] == 1 and served["path"] == str(first_model) and served["pinned"] is False
    assert answer.status_code == 200 and answer.json()[0]["category"] == expected["category"]
    assert answer.json()[0]["score"] == pytest.approx(expected["score"], abs=1e-6)
    untrained = copy_db(synthetic_crawl[0], tmp_path / "untrained.db")
    assert review_main(["--db", str(untrained)]) == 2
    assert "no model in service" in capsys.readouterr().err


def test_a_model_trained_before_the_registry_is_registered_when_promoted(two_databases, tmp_path, capsys):
    first, _, _, first_model, *_ = two_databases
    legacy = copy_db(first, tmp_path / "legacy.db")
    with sqlite3.connect(legacy) as connection:  # as a database trained before the registry existed
        connection.execute("DELETE FROM promotions")
        connection.execute("DELETE FROM models")
    assert models.main(["--db", str(legacy), "current"]) == 2
    assert "no model in service" in capsys.readouterr().err
    assert models.main(["--db", str(legacy), "promote", "1", "--by", "ana"]) == 0
    assert capsys.readouterr().out.strip() == "model 1 is in service, replacing no model"
    (entry,) = registry.entries(legacy)
    assert entry.path == first_model and entry.sha256 == registry.checksum(first_model) and entry.in_service
