"""Accuracy on the real fashion catalog: our model against the 2016 method, on the same deterministic split.

Crawls ``../shared/datasets/fashion`` through the sandbox into ``data/bench/fashion`` (a second run finds the crawl
complete and adds nothing) unless ``--db`` names a crawl, trains our model with ``python -m modeling.train`` (text +
the shared MobileNetV2, stacked; recorded as an experiment), then re-implements the 2016 method on the same
training products and scores both on the same test products:

- text: binary bag of the 20,000 most frequent tokens ``[a-z0-9]+`` of name + description -> 100 ReLU units ->
  softmax (Keras, Adam, 5 epochs, batch 32). Tokens of one character count: scikit-learn's default pattern (two
  or more word characters) drops them, and with them the "t" of "T-shirt" (3,750 training products, 98% of them
  T-shirts), which cost the method 1.15 points (96.52% against 97.67%)
- image: softmax regression on the frozen embeddings (the same MobileNetV2 embeddings ours uses)
- combined: the text model's hidden layer concatenated with the image embedding -> softmax

Our text branch is also set against fastText (supervised, word bigrams; the ``bench`` extra), the peer a shop
would pick instead for text: both trained on the same training products, fastText's epochs and learning rate
chosen on the validation split, both scored on the test split, with training times and in-process prediction
throughputs measured in the same run.

With ``--folds K`` it also estimates our figures by K-fold cross-validation over every product of the chosen
categories, each predicted by a model that never saw it: the test split holds about a thousand products with a
photo and twenty text errors among them, so a goal a few products away from the test figure is within its noise.

    .venv/bin/python bench/accuracy.py [--db data/crawl.db --images data/images] [--folds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from modeling import train
from modeling.data import load_products, select_categories
from modeling.filing import best_parents
from modeling.image import ImageEmbedder
from modeling.metrics import branch_metrics, prediction_figures
from modeling.persistence import load_model
from modeling.stacking import ProductClassifier
from modeling.text import clean_text_columns, make_text_pipeline
from shopstyle_spider import config
from shopstyle_spider.runner import run_crawl
from shopstyle_spider.sandbox import SandboxProcess

KEY = "bench-key"
GOALS = {"text accuracy": 0.98, "image accuracy (photos)": 0.87, "stacked/text error on photos": 0.85,
         "coverage at 98% accuracy": 0.99}


def crawl_fashion(folder: Path) -> tuple[Path, Path]:
    db, images = folder / "crawl.db", folder / "images"
    with SandboxProcess("--catalog", f"fashion:{config.fashion_dir()}", "--api-key", KEY, "--rate-limit", "0") as sb:
        result = run_crawl(sb.url, db, images, api_key=KEY,
                           spider_args={"root": "clothes-shoes-and-jewelry", "max_per_category": 1_000_000},
                           settings={"SHOPSTYLE_REQUESTS_PER_MINUTE": 60_000, "LOG_LEVEL": "WARNING"})
    if result.returncode != 0:
        raise SystemExit(f"the crawl failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return db, images


def add_crawl_arguments(parser: argparse.ArgumentParser) -> None:
    """--db, --images, --work and --min-products: the fashion crawl a benchmark trains on (bench/cluster.py too)."""
    parser.add_argument("--db", type=Path, help="a crawl of the fashion catalog (default: crawl one into --work)")
    parser.add_argument("--images", type=Path, help="its IMAGES_STORE (default: beside --db)")
    parser.add_argument("--work", type=Path, default=config.data_dir() / "bench" / "fashion",
                        help="where the crawl goes when --db is not given, and this benchmark's other outputs")
    parser.add_argument("--min-products", type=int, default=10, help="as modeling.train --min-products")


def crawl_of(args: argparse.Namespace) -> tuple[Path, Path]:
    """The crawl --db and --images name, or the fashion catalog crawled into --work (a complete crawl adds nothing)."""
    if args.db is None:
        return crawl_fashion(args.work)
    return args.db, args.images or args.db.parent / "images"


def method_2016(train_frame, test_frame, train_embeddings, test_embeddings, seed: int) -> dict[str, np.ndarray]:
    """Class-index predictions and scores of the 2016 text, image and combined models."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    keras.utils.set_random_seed(seed)
    classes = np.unique(train_frame["category"])
    y = np.searchsorted(classes, train_frame["category"])

    def text_of(frame):
        return (frame["name"] + " " + frame["description"]).tolist()

    words = CountVectorizer(binary=True, max_features=20_000, token_pattern=r"[a-z0-9]+")
    x_train = words.fit_transform(text_of(train_frame)).astype(np.float32)
    x_test = words.transform(text_of(test_frame)).astype(np.float32)
    inputs = keras.Input((x_train.shape[1],), sparse=True)
    hidden = keras.layers.Dense(100, activation="relu", name="hidden")(inputs)
    text_model = keras.Model(inputs, keras.layers.Dense(len(classes), activation="softmax")(hidden))
    text_model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    text_model.fit(x_train, y, epochs=5, batch_size=32, verbose=0)
    text_proba = text_model.predict(x_test, batch_size=256, verbose=0)

    has_train = ~np.isnan(train_embeddings[:, 0])
    has_test = ~np.isnan(test_embeddings[:, 0])
    image = LogisticRegression(max_iter=1000).fit(train_embeddings[has_train], y[has_train])
    image_proba = np.zeros((len(test_frame), len(classes)))
    image_proba[np.ix_(has_test, image.classes_)] = image.predict_proba(test_embeddings[has_test])

    hidden_model = keras.Model(inputs, hidden)
    combined_train = np.hstack([hidden_model.predict(x_train[has_train], batch_size=256, verbose=0),
                                train_embeddings[has_train]])
    combined_test = np.hstack([hidden_model.predict(x_test[has_test], batch_size=256, verbose=0),
                               test_embeddings[has_test]])
    head_in = keras.Input((combined_train.shape[1],))
    head = keras.Model(head_in, keras.layers.Dense(len(classes), activation="softmax")(head_in))
    head.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    head.fit(combined_train, y[has_train], epochs=5, batch_size=32, verbose=0)
    combined_proba = np.zeros_like(image_proba)
    combined_proba[has_test] = head.predict(combined_test, batch_size=256, verbose=0)
    return {"classes": classes, "text": text_proba, "image": image_proba, "combined": combined_proba,
            "has_photo": has_test}


FASTTEXT_EPOCHS = (5, 15, 25)
FASTTEXT_LEARNING_RATES = (0.1, 0.5, 1.0)


def fasttext_text(train_frame, validation_frame, test_frame, seed: int) -> dict:
    """fastText on the text our model reads (name + description, cleaned by the same function, lower-cased):
    supervised, word bigrams, the epochs and learning rate of best validation accuracy; its test predictions,
    top scores, the chosen setting's training seconds and its test throughput (products/s, predicting the whole
    test split in one call on text already cleaned: the peer's best case)."""
    try:
        import fasttext
    except ImportError:
        raise SystemExit("bench/accuracy.py: fastText is in the bench extra: pip install -e '.[bench]'") from None
    classes = np.unique(train_frame["category"])

    def texts(frame):
        return [text.lower() for text in clean_text_columns(frame)["text"]]

    valid_true = validation_frame["category"].to_numpy()
    best = None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "train.txt"
        labels = np.searchsorted(classes, train_frame["category"])
        path.write_text("".join(f"__label__{label} {text}\n" for label, text in zip(labels, texts(train_frame),
                                                                                    strict=True)), encoding="utf-8")
        valid_texts = texts(validation_frame)
        for epoch in FASTTEXT_EPOCHS:
            for lr in FASTTEXT_LEARNING_RATES:
                started = time.perf_counter()
                model = fasttext.train_supervised(input=str(path), wordNgrams=2, epoch=epoch, lr=lr, seed=seed,
                                                  thread=os.cpu_count() or 1, verbose=0)
                seconds = time.perf_counter() - started
                predicted, _ = model.predict(valid_texts, k=1)
                accuracy = float(np.mean(classes[[int(p[0].removeprefix("__label__")) for p in predicted]]
                                         == valid_true))
                if best is None or accuracy > best[0]:
                    best = (accuracy, epoch, lr, seconds, model)
    accuracy, epoch, lr, seconds, model = best
    test_texts = texts(test_frame)
    model.predict(test_texts[:100], k=1)  # warm-up
    started = time.perf_counter()
    predicted, scores = model.predict(test_texts, k=1)
    rate = len(test_texts) / (time.perf_counter() - started)
    return {"predicted": classes[[int(p[0].removeprefix("__label__")) for p in predicted]],
            "score": np.minimum(np.asarray([s[0] for s in scores]), 1.0), "train_seconds": seconds,
            "rate": rate, "setting": f"epoch {epoch}, lr {lr}, validation accuracy {accuracy:.4f}"}


def our_text_speed(model: ProductClassifier, train_frame, test_frame, seed: int) -> dict:
    """Our text branch's training seconds (``modeling.train``'s defaults, alone) and the fitted model's text-only
    prediction throughput (products/s over every test product read without its photo, in one call: cleaning,
    features, text branch and its fusion)."""
    started = time.perf_counter()
    make_text_pipeline().fit(train_frame, train_frame["category"])
    seconds = time.perf_counter() - started
    text_only = model.text_only()
    rows = test_frame[["name", "description"]]
    text_only.predict_proba(rows[:100])  # warm-up
    started = time.perf_counter()
    text_only.predict_proba(rows)
    return {"train_seconds": seconds, "rate": len(rows) / (time.perf_counter() - started)}


def cross_validated(frame: pd.DataFrame, embedder: ImageEmbedder, folds: int, seed: int) -> pd.DataFrame:
    """Prediction rows of every product, each from our model (``modeling.train``'s defaults) fitted on the other
    folds: the whole catalog is held out once, so the figures rest on all its products instead of a tenth."""
    y = frame["category"].to_numpy()
    rows = []
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for number, (fit_rows, held) in enumerate(splitter.split(np.zeros(len(y)), y), start=1):
        started = time.perf_counter()
        model = ProductClassifier(image=embedder, random_state=seed).fit(frame.iloc[fit_rows], y[fit_rows])
        rows.append(train.prediction_rows(model, frame.iloc[held]))
        print(f"cross-validation: fold {number}/{folds} in {time.perf_counter() - started:.0f} s", flush=True)
    return pd.concat(rows, ignore_index=True)


def goal_lines(figures: dict) -> list[str]:
    """Each goal with our figure and whether it is met; the stacked/text ratio also as the two error counts."""
    photo_text, photo_stacked = figures.get("text_with_photo", figures["text"]), figures.get(
        "stacked_with_photo", figures["stacked"])
    text_errors = round((1 - photo_text["accuracy"]) * photo_text["n"])
    stacked_errors = round((1 - photo_stacked["accuracy"]) * photo_stacked["n"])
    measured = {"text accuracy": figures["text"]["accuracy"],
                "image accuracy (photos)": figures.get("image", {}).get("accuracy", float("nan")),
                "stacked/text error on photos": stacked_errors / max(text_errors, 1),
                "coverage at 98% accuracy": figures["stacked"]["coverage_98"]}
    lines = []
    for goal, target in GOALS.items():
        value = measured[goal]
        met = value <= target if "error" in goal else value >= target
        detail = f"  ({stacked_errors} vs {text_errors} errors in {photo_text['n']})" if "error" in goal else ""
        lines.append(f"  {goal:<30} {value:.4f}  goal {'<=' if 'error' in goal else '>='} {target}  "
                     f"{'met' if met else 'NOT met'}{detail}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_crawl_arguments(parser)
    parser.add_argument("--backbone", default=str(config.mobilenet_v2_backbone()), help="image backbone")
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds and of the 2016 networks")
    parser.add_argument("--folds", type=int, default=0,
                        help="also cross-validate our model over every product with this many folds (0: do not; "
                             "each fold trains a model, about a minute here)")
    args = parser.parse_args(argv)
    if not Path(args.backbone).is_file() or not (config.fashion_dir() / "styles.csv").is_file():
        print(f"bench/accuracy.py: needs {config.fashion_dir()} and {args.backbone} (set SHARED_DIR)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    args.db, images = crawl_of(args)
    cache = args.work / "cache"
    print(f"crawl ready in {time.perf_counter() - started:.0f} s: {args.db}", flush=True)

    t0 = time.perf_counter()
    code = train.main(["--db", str(args.db), "--images", str(images), "--image-backbone", args.backbone,
                       "--out", str(args.work / "models"), "--cache-dir", str(cache), "--min-products",
                       str(args.min_products), "--seed", str(args.seed), "--no-progress", "--name", "bench accuracy",
                       "--keep", "stacked"])  # every branch is measured, whichever the verdict
    if code != 0:
        return code
    ours_seconds = time.perf_counter() - t0
    card = json.loads(max((args.work / "models").glob("*.json"), key=lambda p: p.stat().st_mtime).read_text())
    ours = card["metrics"]["test"]

    frame = select_categories(load_products(args.db, images), min_products=args.min_products)
    train_frame, test_frame = frame[frame["split"] == "train"], frame[frame["split"] == "test"]
    embedder = ImageEmbedder(args.backbone, cache_dir=str(cache), progress=False).fit()
    t0 = time.perf_counter()
    old = method_2016(train_frame, test_frame, embedder.transform(train_frame), embedder.transform(test_frame),
                      args.seed)
    old_seconds = time.perf_counter() - t0
    parents = card["categories"]
    true = test_frame["category"].to_numpy()
    photo = old["has_photo"]

    def figures(proba, rows):
        predicted = old["classes"][proba.argmax(1)]
        top_parents, parent_scores = best_parents(proba, old["classes"], parents)  # as ours: a parent sums its leaves
        return branch_metrics(true[rows], predicted[rows], proba.max(1)[rows], parents, top_parents[rows],
                              parent_scores[rows])

    everything = np.ones(len(true), dtype=bool)
    baseline = {"text": figures(old["text"], everything), "image": figures(old["image"], photo),
                "combined_with_photo": figures(old["combined"], photo), "text_with_photo": figures(old["text"], photo)}

    print(f"\naccuracy benchmark, {time.strftime('%Y-%m-%d')}, {platform.node()}: fashion catalog, "
          f"{len(old['classes'])} categories, {len(train_frame)} training / {len(test_frame)} test products "
          f"({photo.sum()} with a photo); ours trained in {ours_seconds:.0f} s, 2016 method in {old_seconds:.0f} s")
    header = f"{'test split':<32} {'ours':>8} {'2016':>8} {'error ratio':>12}"
    print(header)
    print("-" * len(header))
    rows = [("text only, all products", ours["text"], baseline["text"]),
            ("image only, products with photo", ours.get("image", {}), baseline["image"]),
            ("stacked/combined, with photo", ours.get("stacked_with_photo", {}), baseline["combined_with_photo"]),
            ("text only, products with photo", ours.get("text_with_photo", {}), baseline["text_with_photo"]),
            ("final model, all products", ours["stacked"], baseline["text"])]
    for label, a, b in rows:
        if "accuracy" in a:
            ratio = (1 - a["accuracy"]) / max(1 - b["accuracy"], 1e-9)
            print(f"{label:<32} {a['accuracy']:>8.4f} {b['accuracy']:>8.4f} {ratio:>11.2f}x")
    for name in ("coverage_95", "coverage_98", "parent_accuracy", "ece"):
        print(f"{'final model ' + name:<32} {ours['stacked'][name]:>8.4f} {baseline['text'][name]:>8.4f}")
    print("\ngoals (ours, test split):")
    print("\n".join(goal_lines(ours)))

    peer = fasttext_text(train_frame, frame[frame["split"] == "validation"], test_frame, args.seed)
    speed = our_text_speed(load_model(args.work / "models" / f"{card['experiment_id']}.joblib"), train_frame,
                           test_frame, args.seed)
    fast = branch_metrics(true, peer["predicted"], peer["score"], parents)
    print(f"\ntext: ours against fastText (supervised, word bigrams; {peer['setting']}), same split, same run")
    print(f"{'test split':<24} {'accuracy':>9} {'coverage 98%':>13} {'training s':>11} {'products/s':>11}")
    print(f"{'ours, text branch':<24} {ours['text']['accuracy']:>9.4f} {ours['text']['coverage_98']:>13.4f} "
          f"{speed['train_seconds']:>11.1f} {speed['rate']:>11.0f}")
    print(f"{'fastText':<24} {fast['accuracy']:>9.4f} {fast['coverage_98']:>13.4f} {peer['train_seconds']:>11.1f} "
          f"{peer['rate']:>11.0f}")
    print(f"ours/fastText: error {(1 - ours['text']['accuracy']) / max(1 - fast['accuracy'], 1e-9):.2f}x, "
          f"training time {speed['train_seconds'] / peer['train_seconds']:.1f}x, prediction throughput "
          f"{speed['rate'] / peer['rate']:.3f}x (goals: accuracy >= fastText's, throughput >= 0.25x, stretch 0.5x)")
    if args.folds:
        pooled = cross_validated(frame, embedder, args.folds, args.seed)
        figures = prediction_figures(pooled, parents)
        print(f"\ncross-validated over every product ({args.folds} folds, {figures['text']['n']} products, "
              f"{figures.get('image', {}).get('n', 0)} with a photo):")
        for label, key in (("text only, all products", "text"), ("image only, products with photo", "image"),
                           ("stacked, products with photo", "stacked_with_photo"),
                           ("text only, products with photo", "text_with_photo"), ("final model", "stacked")):
            if key in figures:
                print(f"  {label:<32} {figures[key]['accuracy']:>8.4f}")
        print("goals (ours, cross-validated):")
        print("\n".join(goal_lines(figures)))
    print(f"\nours: experiment {card['experiment_id']} ({card['parameters']['model']}) in {args.db}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
