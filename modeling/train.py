"""``python -m modeling.train``: learn leaf categories from a crawl, report held-out figures, save a reusable model.

Each run is an experiment: its parameters, library versions and metrics, and every validation and test prediction
(with each branch's own), go into the crawl database for ``modeling.analyze``; the model goes to
``<out>/<experiment id>.joblib`` with a JSON card beside it, where ``<out>`` is the database's own models folder
(``modeling.registry``) unless ``--out`` names another, and is registered in the database's ``models`` table. The
first model of a database goes into service; a later one as ``--promote`` says.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from contextlib import ExitStack, closing
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from shopstyle_spider import changes, cli, config, schema

from . import champion, registry, store
from .backbones import BackboneError
from .cluster import ClusterError, dask_cluster
from .data import (
    LABELS,
    DataError,
    leaf_parents,
    load_products,
    photo_summary,
    review_count,
    select_categories,
    unlearned_products,
    with_reviewed_labels,
)
from .filing import (
    CONFIDENCE,
    STEP,
    TARGETS,
    batch_argument,
    best_parents,
    choose_thresholds,
    levels_argument,
    never_files,
)
from .image import ImageEmbedder
from .metrics import prediction_figures
from .persistence import ModelFileError, dump_pending, load_model, publish_model
from .photo_store import PhotoStoreError, crawl_images, images_location, is_remote
from .runtime import RUNTIME_HELP, RUNTIMES
from .stacking import ProductClassifier
from .text import make_text_pipeline

log = logging.getLogger("modeling.train")

PROMOTE = ("if-better", "always", "never")
CALIBRATION_COLUMNS = ("true_category", "predicted_category", "score", "parent_category", "parent_score")

LIBRARIES = ("scikit-learn", "keras", "tensorflow-cpu", "openvino", "numpy", "pandas", "nltk", "joblib", "pillow",
             "scrapy")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for library in LIBRARIES:
        try:
            versions[library] = version(library)
        except PackageNotFoundError:
            versions[library] = "absent"
    return versions


# --cv auto: folds below this many training products, a fifth held out above. The filing guarantee is computed on
# the out-of-fold predictions, and only folds give one for every training product: on the fashion catalog (30,142
# training products, text only) 5 folds file 95.3% at 99% against 93.1% for a fifth held out, for 6.7 times the
# training time (bench/RESULTS.md, bench/filing.py); above this size a fifth is already more products than the
# guarantee needs, and folds would take a 150,000-product catalog past ten minutes.
AUTO_FOLDS = 5
AUTO_FOLDS_UP_TO = 50_000
AUTO_FRACTION = 0.2


def folds_or_fraction(text: str) -> int | float | str:
    """``--cv``: "5" is five folds, "0.2" a fifth held out, "auto" decided by the number of training products
    (``cv_for``)."""
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of folds or a fraction, got {text!r}") from None
    if value.is_integer() and value >= 2:
        return int(value)
    if 0.0 < value < 1.0:
        return value
    raise argparse.ArgumentTypeError(f"expected a number of folds >= 2 or a fraction between 0 and 1, got {text}")


def targets_argument(text: str) -> tuple[float, ...]:
    """``0.99`` or ``0.98,0.99``: targets the model card has thresholds for."""
    try:
        targets = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected target accuracies like 0.99 or 0.98,0.99") from None
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise argparse.ArgumentTypeError(f"{text!r}: the card has thresholds for {', '.join(map(str, TARGETS))} only")
    return targets


def cv_for(requested: int | float | str, training_products: int) -> int | float:
    """What ``--cv auto`` means for this many training products; any other value as given.

    >>> cv_for("auto", 30_142), cv_for("auto", 150_000), cv_for(0.2, 1_000)
    (5, 0.2, 0.2)
    """
    if requested != "auto":
        return requested
    return AUTO_FOLDS if training_products <= AUTO_FOLDS_UP_TO else AUTO_FRACTION


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m modeling.train", description=__doc__,
                                     formatter_class=cli.HelpFormatter)
    parser.add_argument("--db", type=schema.location, default=config.crawl_db(),
                        help="the crawl database to learn from (and to record the experiment in): a sqlite file or a "
                             "postgresql:// URL")
    parser.add_argument("--images", type=images_location,
                        help="the crawl's IMAGES_STORE (image paths in the database are relative to it): a folder, "
                             "or s3://bucket/prefix/, whose photos are copied once into "
                             f"{config.remote_images_cache_dir()} (default: where the crawl recorded it stored "
                             f"them, else {config.images_dir()})")
    parser.add_argument("--image-backbone", default=str(config.mobilenet_v2_backbone()),
                        help="a keras.applications name (inception_v3, mobilenet_v2, efficientnet_b0, resnet50: "
                             "their ImageNet weights download only when online), the path of a .keras file taking "
                             "raw RGB 0..255 and returning pooled features, or 'none' for a text-only model")
    parser.add_argument("--image-runtime", choices=RUNTIMES, default="auto", help=RUNTIME_HELP)
    parser.add_argument("--weights", choices=("imagenet", "random"), default="imagenet",
                        help="weights of a named keras.applications backbone ('random' only to time an architecture)")
    parser.add_argument("--categories", type=lambda s: [c.strip() for c in s.split(",") if c.strip()],
                        help="only these leaf categories, comma-separated (default: every leaf)")
    parser.add_argument("--labels", choices=LABELS,
                        help="'reviewed': learn the category a person decided where one did (modeling.reviews) and "
                             "leave out excluded products; 'crawled': the catalog's labels as crawled (default: "
                             "reviewed once the database holds a review, else crawled)")
    parser.add_argument("--min-products", type=int, default=5,
                        help="leave out leaves with fewer training products than this (5: of 10, 5 and 3 it filed "
                             "the most of the fashion catalog's out-of-fold and validation products under the "
                             "guarantee at 99%% and 99.5%%; a leaf left out still counts in the guarantee)")
    parser.add_argument("--out", type=Path,
                        help="folder for <experiment id>.joblib/.json (default: the database's own folder under "
                             f"{config.models_dir()}, named for it: no two databases share one)")
    parser.add_argument("--promote", choices=PROMOTE, default="if-better",
                        help="whether the new model goes into service: 'if-better' when it is the database's first "
                             "model or beats the one in service, 'always', or 'never' (python -m modeling.models "
                             "promote N does it later)")
    parser.add_argument("--promote-targets", type=targets_argument, default=TARGETS, metavar="TARGET[,TARGET]",
                        help="the target accuracies the shop files at: --promote if-better refuses a model that files "
                             "less at one of these (every target is compared and reported); default: all of "
                             f"{','.join(map(str, TARGETS))}")
    levels_argument(parser, "the levels the shop files at (predict's and the cycle's --levels): --promote if-better "
                            "compares how much each model files at these only")
    parser.add_argument("--batch-promise", type=batch_argument, metavar="N",
                        help="promise every batch of N products a level files (a week's, say) at least the target "
                             "accurate, with 95%% probability, instead of the level's accuracy: each level is then "
                             "held above the target by what N allows (99%% with N=400: 99.51%%), which sends more "
                             "products to a person; none (the default): the promise is on the level's accuracy")
    parser.add_argument("--promoted-by", default=registry.whoami(), help="who a promotion is recorded as made by")
    parser.add_argument("--name", help="experiment name (default: the backbone and the number of categories)")
    parser.add_argument("--cache-dir", type=Path, default=config.embedding_cache_dir(),
                        help="embedding cache (keyed by backbone and photo content: a second run embeds nothing)")
    parser.add_argument("--text-classifier", choices=("sgd", "logistic"), default="sgd",
                        help="the text branch's linear model: logistic loss by SGD (fast on large catalogs) or "
                             "multinomial logistic regression by L-BFGS")
    parser.add_argument("--text-alpha", type=float, default=1e-5, help="L2 penalty of the SGD text classifier")
    parser.add_argument("--text-C", type=float, default=5.0,
                        help="inverse regularisation of the logistic-regression text classifier")
    parser.add_argument("--no-stemming", action="store_true", help="TF-IDF on words as written, without stemming")
    parser.add_argument("--cv", type=folds_or_fraction, default="auto",
                        help="where the stacking's out-of-fold probabilities (and the filing guarantee's) come from: "
                             "a whole number of folds, or a fraction (e.g. 0.2) of the training products held out "
                             "once, which trains each branch twice instead of folds + 1 times; 'auto': "
                             f"{AUTO_FOLDS} folds up to {AUTO_FOLDS_UP_TO:,} training products (every one then has an "
                             f"out-of-fold score, so the guarantee files more), {AUTO_FRACTION} above")
    parser.add_argument("--batch-size", type=int, default=32, help="photos per network call when embedding")
    parser.add_argument("--keep", choices=("better", "stacked"), default="better",
                        help="'better': when stacking text and image does not beat text alone on the validation "
                             "split, say so and save the text-only model; 'stacked': save the stacked model anyway")
    parser.add_argument("--seed", type=int, default=0, help="seed of the cross-validation folds")
    parser.add_argument("--cluster", metavar="ADDRESS",
                        help="a Dask scheduler (tcp://HOST:8786): photos are embedded on its workers and the "
                             "branches' fits run there through joblib's Dask backend (default: this machine only)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def prediction_rows(model: ProductClassifier, frame: pd.DataFrame) -> pd.DataFrame:
    """One row per product of ``frame``: its true category, the stacked prediction and each branch's own, and the
    stacked model's most probable parent with its probability (columns in the order of ``store.predictions``)."""
    stacked, text, image = model.predict_branches(frame)
    classes = model.classes_
    has_image = ~np.isnan(image[:, 0])
    parent, parent_score = best_parents(stacked, classes, model.category_parents or {})
    return pd.DataFrame({
        "product_id": frame["id"].to_numpy(), "split": frame["split"].to_numpy(),
        "true_category": frame["category"].to_numpy(),
        "predicted_category": classes[stacked.argmax(1)], "score": stacked.max(1),
        "text_category": classes[text.argmax(1)], "text_score": text.max(1),
        "image_category": np.where(has_image, classes[np.nan_to_num(image).argmax(1)], None),
        "image_score": np.where(has_image, np.nan_to_num(image).max(1), np.nan),
        "parent_category": parent, "parent_score": parent_score,
    })


def out_of_fold_rows(model: ProductClassifier, proba: np.ndarray, frame: pd.DataFrame) -> pd.DataFrame:
    """Prediction rows (the columns ``choose_thresholds`` reads) of the training products that the stacking held
    out, from their out-of-fold probabilities: what a model that never saw them said."""
    held = ~np.isnan(proba[:, 0])
    proba, frame = proba[held], frame[held]
    parent, parent_score = best_parents(proba, model.classes_, model.category_parents or {})
    return pd.DataFrame({"true_category": frame["category"].to_numpy(),
                         "predicted_category": model.classes_[proba.argmax(1)], "score": proba.max(1),
                         "parent_category": parent, "parent_score": parent_score})


def guaranteed_filing(model: ProductClassifier, out_of_fold: np.ndarray, train: pd.DataFrame,
                      validation_rows: pd.DataFrame, unlearned: pd.DataFrame,
                      batch: int | None = None) -> tuple[dict, dict]:
    """The card's filing thresholds (``filing.choose_thresholds``) on every product the model did not learn from:
    the training products' out-of-fold predictions, the validation split, and the products of leaves left out for
    too few training products (``unlearned``, test split excluded); and how they were computed. With ``batch``, each
    batch of that many filed products is promised the target (``filing.batch_target``).

    The unlearned leaves' products are there because the model will meet their like in service and file some of
    them: wrong at the leaf always, at the parent when the leaves it knows there outweigh the others. A promise
    computed without them is a promise for a catalog without them, which the crawl is not."""
    unlearned_rows = prediction_rows(model, unlearned) if len(unlearned) else validation_rows.iloc[:0]
    rows = pd.concat([out_of_fold_rows(model, out_of_fold, train), validation_rows[list(CALIBRATION_COLUMNS)],
                      unlearned_rows[list(CALIBRATION_COLUMNS)]], ignore_index=True)
    filing = choose_thresholds(rows["true_category"], rows["predicted_category"], rows["score"],
                               rows["parent_category"], rows["parent_score"], model.category_parents or {},
                               batch=batch)
    how = {"confidence": CONFIDENCE, "step": STEP, "batch": batch, "products": len(rows),
           "validation": len(validation_rows),
           "out_of_fold": len(rows) - len(validation_rows) - len(unlearned_rows), "unlearned": len(unlearned_rows),
           "unlearned_leaves": int(unlearned["category"].nunique()) if len(unlearned) else 0,
           "method": "fixed-sequence tests of Clopper-Pearson lower bounds (Learn-then-Test), leaf then parent, "
                     "each level at half the risk, shared by its two sequences where the products allow two"}
    return filing, how


def challenge(args: argparse.Namespace, test: pd.DataFrame, rows: pd.DataFrame, filing: dict,
              labels: str) -> dict | None:
    """The new model against the one in service on the same test products (``modeling.champion``), or None when
    none is in service. A model in service that cannot be loaded is reported, and the comparison refuses."""
    serving = next((entry for entry in registry.entries(args.db) if entry.in_service), None)
    if serving is None:
        return None
    try:
        path = registry.serving_path(args.db)
        card = json.loads(serving.card_path.read_text(encoding="utf-8"))
        serving_model = load_model(path, image_runtime=args.image_runtime)
    except (registry.RegistryError, ModelFileError, OSError, ValueError) as error:
        return {"model": serving.experiment_id, "promote": False,
                "reasons": [f"the model in service cannot be compared: {error}"]}
    truth = {"crawled": test["crawled_category"] if labels == "reviewed" else test["category"]}
    if labels == "reviewed":
        truth["reviewed"] = test["category"]
    comparison = champion.compare(prediction_rows(serving_model, test), rows, truth, card.get("filing"), filing,
                                  TARGETS, required=args.promote_targets, levels=args.levels.split(","))
    return {"model": serving.experiment_id, **comparison}


def evaluate(model: ProductClassifier, frame: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    """Figures of the stacked model and of each branch on ``frame``, and one prediction row per product."""
    rows = prediction_rows(model, frame)
    return prediction_figures(rows, model.category_parents), rows


def new_since_last_experiment(db: Path, product_ids) -> int | None:
    """How many of the products the crawl first met after the previous experiment (None for the first one)."""
    with closing(store.connect(db, readonly=True)) as connection:
        last = (connection.execute(select(func.max(store.experiments.c.created_at))).scalar()
                if store.has_table(connection, store.experiments) else None)
    return None if last is None else changes.first_seen_after(db, product_ids, last)


def record_experiment(db: Path, out: Path, model: ProductClassifier, card: dict, predictions: pd.DataFrame,
                      labels: dict) -> int:
    """The model pickled first, under a temporary name, so no database lock is held while pickling; then one
    transaction: the experiment row, its predictions and the model's registry row. Once it commits the file takes
    the row's id; a failed commit deletes it, so no file is left under an id the next run reuses. A file already
    under that name (another database's, saved to the same ``--out``) is never replaced: the run fails first.
    ``labels``: which labels the model learned, as the registry records it."""
    pending = dump_pending(model, out)
    sha256 = registry.checksum(pending)
    try:
        with closing(store.connect(db)) as connection, connection.begin():
            experiment_id = connection.execute(insert(store.experiments).values(
                name=card["name"], created_at=card["created_at"], parameters=json.dumps(card["parameters"]),
                versions=json.dumps(card["versions"]),
                metrics=json.dumps({**card["metrics"], "filing": card["filing"], "champion": card["champion"]}),
            )).inserted_primary_key[0]
            records = predictions.astype(object).where(predictions.notna(), None)
            columns = [column.name for column in store.predictions.columns]
            connection.execute(insert(store.predictions), [dict(zip(columns, (experiment_id, *row), strict=True))
                                                          for row in records.itertuples(index=False, name=None)])
            model_path = out / f"{experiment_id}.joblib"
            if model_path.exists():
                raise FileExistsError(f"{model_path} already exists, a model of another database (one saved to the "
                                      "same --out, or an earlier database at this path): move that file away or "
                                      "give another --out")
            connection.execute(update(store.experiments).where(store.experiments.c.id == experiment_id)
                               .values(model_path=str(model_path)))
            registry.register(connection, experiment_id, model_path, sha256, labels, card["created_at"])
    except BaseException:
        pending.unlink(missing_ok=True)
        raise
    publish_model(pending, model_path, {"experiment_id": experiment_id, **card})
    return experiment_id


def summary_lines(metrics: dict) -> list[str]:
    """The summary's table of figures per split and branch, in columns as wide as the longest split's name (the
    crawled labels' test split too); '-' where a figure does not apply (a branch has no parent accuracy).

    >>> for line in summary_lines({"test": {"text": {"n": 5, "accuracy": 0.8, "coverage_95": 0.2,
    ...                                               "coverage_98": 0.0, "ece": 0.1}}}):
    ...     print(line)
    split branch                   n  accuracy  cov@95  cov@98  parent    ECE
    test  text                     5    0.8000   0.200   0.000       -  0.100
    """
    width = max([len("split"), *map(len, metrics)])
    lines = [f"{'split':<{width}} {'branch':<19} {'n':>6} {'accuracy':>9} {'cov@95':>7} {'cov@98':>7} {'parent':>7} "
             f"{'ECE':>6}"]
    for split, branches in metrics.items():
        for branch, f in branches.items():
            parent = f.get("parent_accuracy")
            parent = "-" if parent is None or parent != parent else f"{parent:.4f}"
            lines.append(f"{split:<{width}} {branch:<19} {f['n']:>6} {f['accuracy']:>9.4f} {f['coverage_95']:>7.3f} "
                         f"{f['coverage_98']:>7.3f} {parent:>7} {f['ece']:>6.3f}")
    return lines


def filing_lines(filing: dict, guarantee: dict) -> list[str]:
    batch = guarantee.get("batch")
    confidence = f"{guarantee['confidence']:.0%} confidence"
    promise = (f"each level at least the target accurate with {confidence}" if batch is None else
               f"each level at least its 'held to' accuracy with {confidence}, so that a batch of {batch} products "
               f"it files is at least the target accurate with {guarantee['confidence']:.0%} probability")
    lines = [f"auto-filing thresholds, {promise} (computed on "
             f"{guarantee['products']} products: {guarantee['out_of_fold']} out-of-fold, "
             f"{guarantee['validation']} validation"
             + (f", {guarantee['unlearned']} of the {guarantee['unlearned_leaves']} leaves left out for too few "
                "training products" if guarantee.get("unlearned") else "") + "):",
             f"  {'target':>6} {'leaf':>7} {'bound':>7} {'parent':>7} {'bound':>7}"
             + ("" if batch is None else f" {'held to':>7}")]
    for target, chosen in filing.items():
        lines.append(f"  {target:>6} {_or_dash(chosen['leaf'])} {_or_dash(chosen['leaf_bound'])} "
                     f"{_or_dash(chosen['parent'])} {_or_dash(chosen['parent_bound'])}"
                     + ("" if batch is None else f" {chosen['level_target']:>7.4f}"))
        lines += [f"         {line}" for line in never_files(chosen)]
    return lines


def _or_dash(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "  never"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    with ExitStack() as cluster:  # the Dask client, when there is one, lives until the model is saved
        return run(args, cluster)


def run(args: argparse.Namespace, cluster: ExitStack) -> int:
    started = time.perf_counter()
    try:
        if args.cluster:
            cluster.enter_context(dask_cluster(args.cluster))
        args.images = crawl_images(args.db, args.images)
        crawled = load_products(args.db, args.images, progress=not args.no_progress)
        photos, photos_loud = photo_summary(crawled)
        if photos_loud:
            print(f"modeling.train: WARNING: {photos}", file=sys.stderr)
        labels = args.labels or ("reviewed" if review_count(args.db) else "crawled")
        products = with_reviewed_labels(crawled, args.db, args.images) if labels == "reviewed" else crawled
        frame = select_categories(products, args.categories, args.min_products)
        unlearned = unlearned_products(products, frame, args.categories)
        embedder = None
        if args.image_backbone.lower() != "none":
            embedder = ImageEmbedder(args.image_backbone, weights=None if args.weights == "random" else "imagenet",
                                     batch_size=args.batch_size, cache_dir=str(args.cache_dir),
                                     progress=not args.no_progress, runtime=args.image_runtime)
            embedder.fit()  # an unusable backbone fails here, before minutes of text training
    except (DataError, BackboneError, PhotoStoreError, ClusterError, schema.SchemaError) as error:
        print(f"modeling.train: {error}", file=sys.stderr)
        return 2

    train = frame[frame["split"] == "train"]
    held_out = frame[frame["split"] != "train"]
    parents = leaf_parents(products)  # the unlearned leaves' parents too: they score the guarantee
    log.info("%d categories; %d training, %d validation, %d test products (%d of them with a photo)",
             frame["category"].nunique(), len(train), (frame["split"] == "validation").sum(),
             (frame["split"] == "test").sum(), frame["image_path"].notna().sum())

    args.cv = cv_for(args.cv, len(train))
    model = ProductClassifier(text=make_text_pipeline(stem=not args.no_stemming, classifier=args.text_classifier,
                                                        alpha=args.text_alpha, C=args.text_C), image=embedder,
                              cv=args.cv, random_state=args.seed,
                              category_parents=dict(sorted(parents.items())))
    out_of_fold, out_of_fold_text = model.fit_out_of_fold(train, train["category"], text_only=True)
    metrics, predictions = {}, []
    for split in ("validation", "test"):
        metrics[split], rows = evaluate(model, held_out[held_out["split"] == split])
        predictions.append(rows)
    validation = metrics["validation"]
    verdict = "text only"
    if model.meta_image_ is not None:
        if validation["stacked"]["accuracy"] > validation["text"]["accuracy"]:
            verdict = "stacked text and image"
        elif args.keep == "stacked":
            log.warning("stacking does not beat text alone on validation (%.4f vs %.4f): keeping it as asked",
                        validation["stacked"]["accuracy"], validation["text"]["accuracy"])
            verdict = "stacked text and image (kept as asked; it did not beat text on validation)"
        else:
            log.warning("stacking does not beat text alone on validation (%.4f vs %.4f): keeping the text-only model",
                        validation["stacked"]["accuracy"], validation["text"]["accuracy"])
            model, out_of_fold = model.text_only(), out_of_fold_text
            metrics, predictions = {}, []
            for split in ("validation", "test"):
                metrics[split], rows = evaluate(model, held_out[held_out["split"] == split])
                predictions.append(rows)
            verdict = "text only (stacking lost on validation)"

    rows = pd.concat(predictions, ignore_index=True)
    validation_rows = rows[rows["split"] == "validation"]
    filing, guarantee = guaranteed_filing(model, out_of_fold, train, validation_rows, unlearned, args.batch_promise)
    test_frame = held_out[held_out["split"] == "test"]
    comparison = challenge(args, test_frame, rows[rows["split"] == "test"], filing, labels)
    label_counts = {"labels": labels}
    if labels == "reviewed":
        from_files = frame["crawled_category"].isna()  # products from files, filed by people
        relabelled = ~from_files & (frame["category"] != frame["crawled_category"])
        label_counts.update({"reviewed_labels": int(frame["reviewed"].sum()), "relabelled": int(relabelled.sum()),
                             "relabelled_train": int((relabelled & (frame["split"] == "train")).sum()),
                             "file_products": int(from_files.sum()),
                             "file_products_train": int((from_files & (frame["split"] == "train")).sum()),
                             "excluded": len(crawled) - int(products["crawled_category"].notna().sum())})
        # the same crawled test products scored against what the catalog said, beside what people decided
        test_rows = rows[(rows["split"] == "test") & rows["product_id"].isin(frame.loc[~from_files, "id"])]
        as_crawled = frame.set_index("id").loc[test_rows["product_id"], "crawled_category"].to_numpy()
        metrics["test_crawled_labels"] = prediction_figures(test_rows.assign(true_category=as_crawled),
                                                    model.category_parents)

    card = {
        "name": args.name or f"{Path(args.image_backbone).stem if embedder else 'text-only'} "
                             f"{frame['category'].nunique()} categories",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "parameters": {"db": schema.display_name(args.db),
                       "images": args.images if is_remote(args.images) else str(Path(args.images).resolve()),
                       "image_backbone": args.image_backbone if embedder else None,
                       "weights": args.weights if embedder else None, "categories": args.categories,
                       "min_products": args.min_products, "text_classifier": args.text_classifier,
                       "text_alpha": args.text_alpha, "text_C": args.text_C, "stemming": not args.no_stemming,
                       "cv": args.cv, "seed": args.seed, "keep": args.keep, "model": verdict,
                       "levels": args.levels,
                       "train_products": len(train), "train_seconds": round(time.perf_counter() - started, 1),
                       "new_products": new_since_last_experiment(args.db, frame["id"]),
                       **label_counts},
        "versions": library_versions(),
        "metrics": metrics,
        # target accuracy -> the leaf and parent score thresholds, each level's accuracy bound and why one never files
        "filing": filing,
        "guarantee": guarantee,
        # the model in service's figures and this one's on the same test products, and the verdict
        "champion": comparison,
        "categories": {c: parents.get(c) for c in model.classes_},
    }
    out = args.out or registry.models_folder(args.db)
    try:
        experiment_id = record_experiment(args.db, out, model, card, rows, label_counts)
    except (schema.SchemaError, SQLAlchemyError, FileExistsError) as error:
        print(f"modeling.train: the experiment could not be recorded, so no model was saved: "
              f"{getattr(error, 'orig', None) or error}", file=sys.stderr)
        return 2
    print(f"experiment {experiment_id}: {card['name']} ({verdict}), trained in {card['parameters']['train_seconds']} s")
    if labels == "reviewed":
        print(f"labels: reviewed ({label_counts['reviewed_labels']} decided products in force, "
              f"{label_counts['file_products']} of them from files ({label_counts['file_products_train']} in "
              f"training); {label_counts['relabelled']} crawled labels changed, {label_counts['excluded']} excluded)")
    else:
        print("labels: crawled (the catalog's own; people's decisions not used)")
    print(photos)
    print("\n".join(summary_lines(metrics)))
    print("\n".join(filing_lines(filing, guarantee)))
    print(f"model: {out / f'{experiment_id}.joblib'}")
    if comparison is not None:
        print(f"against model {comparison['model']}, in service (test split; McNemar's exact paired test):")
        if "labels" in comparison:
            print(champion.comparison_table(comparison).to_string(index=False, float_format=lambda v: f"{v:.4f}",
                                                                  na_rep="-"))
    print(promotion_line(args, experiment_id, comparison))
    return 0


def promotion_line(args: argparse.Namespace, experiment_id: int, comparison: dict | None) -> str:
    """Promote the new model as ``--promote`` and the comparison say; what happened, in a line."""
    with closing(store.connect(args.db)) as connection:
        serving = registry.in_service(connection)
    if serving is None:
        reason = "the database's first model" if args.promote != "never" else None
    elif args.promote == "always":
        reason = "--promote always"
    elif args.promote == "if-better" and comparison is not None and comparison["promote"]:
        reason = f"not worse than model {comparison['model']} beyond noise, files no less"
    else:
        reason = None
    if reason is None:
        why = "; ".join(comparison["reasons"]) if comparison and comparison["reasons"] else f"--promote {args.promote}"
        stays = f"; model {serving} stays" if serving is not None else ""
        return (f"model {experiment_id} is not in service ({why}){stays}; python -m modeling.models promote "
                f"{experiment_id} puts it there")
    replaced = registry.promote(args.db, experiment_id, by=args.promoted_by, reason=reason)
    return f"model {experiment_id} is in service ({reason}), replacing " + (
        f"model {replaced}" if replaced is not None else "no model")


if __name__ == "__main__":
    raise SystemExit(main())
