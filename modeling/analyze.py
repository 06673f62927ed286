"""``python -m modeling.analyze``: how much of the catalog a model can file on its own, and where it goes wrong.

With no option it reports every experiment in the crawl database: per branch (stacked, text, image) the accuracy,
the coverage at 95% and 98% accuracy with the score threshold that achieves each, the parent-category figures,
macro-F1 and calibration error, on the test split, with the labels it was scored on; then the auto-filing decisions
at each target accuracy: each level's threshold and the accuracy it promises (its bound, ``modeling.filing``), the
share filed at the leaf, at the parent and sent to review, and the accuracy each reached. ``--drift`` sets the
products crawled since a model was trained against its validation split (``modeling.drift``) and says whether
filing or the categories moved beyond noise. ``--experiment N`` adds the per-category table and the most confused
pairs; ``--html`` writes its most confident errors with their photos; ``--plots`` draws the charts and an index page;
``--json`` prints the same figures machine-readable; ``--compare A B`` sets two experiments side by side, saying so
when they were scored on different labels (``registry.scored_on``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

from shopstyle_spider import cli, config, schema

from . import analysis, champion, drift, plots, registry, report
from .backbones import BackboneError
from .data import DataError
from .filing import LEVELS
from .metrics import prediction_figures
from .persistence import ModelFileError
from .photo_store import is_remote

FIGURE_COLUMNS = ("n", "accuracy", "coverage_95", "threshold_95", "coverage_98", "threshold_98", "parent_accuracy",
                  "parent_coverage_95", "parent_coverage_98", "macro_f1", "ece")

DECISION_COLUMNS = ("target", "held_to", "leaf_threshold", "leaf_bound", "leaf_share", "leaf_accuracy",
                    "parent_threshold", "parent_bound", "parent_share", "parent_accuracy", "review_share")
# how the thresholds were chosen, as the report says it
DECISIONS_TITLE = ("auto-filing decisions (thresholds promising each level's accuracy with 95% confidence, computed "
                   "on out-of-fold and validation predictions; held to: the accuracy promised, above the target "
                   "when the promise is on every batch of N filed products; bound: that promise)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m modeling.analyze", description=__doc__,
                                     formatter_class=cli.HelpFormatter)
    parser.add_argument("--db", type=schema.location, default=config.crawl_db(),
                        help="the crawl database holding experiments: a sqlite file or a postgresql:// URL")
    parser.add_argument("--images", type=Path,
                        help="the crawl's IMAGES_STORE, for the photos of the error page (default: the one the "
                             f"experiment was trained on, as it recorded; {config.images_dir()} for an experiment "
                             "that recorded none)")
    parser.add_argument("--split", choices=("test", "validation", "all"), default="test",
                        help="which held-out predictions to analyse")
    parser.add_argument("--experiment", type=int,
                        help="one experiment in detail: per-category table and most confused pairs "
                             "(--html and --plots use the latest experiment when this is not given)")
    parser.add_argument("--errors", type=int, default=20, help="how many of the most confident errors --html shows")
    parser.add_argument("--html", type=Path, help="write the most confident errors, with photos, to this HTML file")
    parser.add_argument("--plots", type=Path,
                        help="folder for PNG charts, the error page and an index.html bringing them together")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of tables")
    parser.add_argument("--compare", type=int, nargs=2, metavar=("A", "B"), help="two experiments side by side")
    parser.add_argument("--drift", action="store_true",
                        help="predict the products first seen since the experiment (--experiment, default the "
                             "model in service, else the latest) was trained with its model and set them against its "
                             "validation split: filing at each target, category shares, scores, unseen words, photos "
                             "(--html writes it as a page)")
    parser.add_argument("--since", help="with --drift: products first seen after this ISO time (default: when the "
                                        "experiment was trained)")
    return parser


def figures_frame(figures: dict[str, dict]) -> pd.DataFrame:
    rows = [{"branch": branch, **{c: f.get(c) for c in FIGURE_COLUMNS}} for branch, f in figures.items()]
    return pd.DataFrame(rows, columns=["branch", *FIGURE_COLUMNS])


def experiment_tables(experiments: pd.DataFrame, predictions: pd.DataFrame, parents: dict[str, str | None]
                      ) -> tuple[dict[int, pd.DataFrame], dict[int, dict], dict[int, pd.DataFrame]]:
    """Each experiment's predictions among ``predictions``, its figures (``prediction_figures``) and its auto-filing
    decisions (``analysis.decision_table``, empty for an experiment that chose no thresholds)."""
    by_experiment = {e: predictions[predictions["experiment_id"] == e] for e in experiments.index}
    figures = {e: prediction_figures(rows, parents) for e, rows in by_experiment.items()}
    decisions = {e: analysis.decision_table(rows, experiments.at[e, "metrics"].get("filing"), parents,
                                            levels_of(experiments.at[e, "parameters"]))
                 for e, rows in by_experiment.items()}
    return by_experiment, figures, decisions


def levels_of(parameters: dict) -> list[str]:
    """The levels an experiment's shop files at (``modeling.train --levels``; both for an older experiment)."""
    return str(parameters.get("levels") or ",".join(LEVELS)).split(",")


def decisions_title(parameters: dict) -> str:
    """The decisions table's title, naming a leaf-only rule (whose table files nothing at the parent)."""
    only = "" if set(levels_of(parameters)) == set(LEVELS) else ", at the leaf only (--levels leaf)"
    return DECISIONS_TITLE + only


def report_sections(experiments: pd.DataFrame, figures: dict[int, dict],
                    decisions: dict[int, pd.DataFrame]) -> list[tuple[str, dict]]:
    """The report's tables, the same in ``--plots``' index page and the review app's report: per experiment its
    figures, then its decisions where it has any, then its comparison with the model in service where it had one."""
    sections = []
    for e in experiments.index:
        sections.append((f"Experiment {e}: {experiments.at[e, 'name']}", report.table(figures_frame(figures[e]))))
        if len(decisions[e]):
            sections.append((f"Experiment {e}: {decisions_title(experiments.at[e, 'parameters'])}",
                             report.table(decisions[e], DECISION_COLUMNS)))
        comparison = comparison_of(experiments, e)
        if comparison is not None:
            sections.append((comparison_title(e, comparison), report.table(champion.comparison_table(comparison))))
    return sections


def comparison_of(experiments: pd.DataFrame, e: int) -> dict | None:
    """The experiment's comparison with the model in service when it was trained (None: none was, or it could
    not be compared)."""
    comparison = experiments.at[e, "metrics"].get("champion")
    return comparison if comparison and "labels" in comparison else None


def comparison_title(e: int, comparison: dict) -> str:
    verdict = "not worse beyond noise" if comparison["promote"] else "; ".join(comparison["reasons"])
    return (f"Experiment {e} (challenger) against model {comparison['model']} (in service), same test products, "
            f"McNemar's exact test: {verdict}")


def recorded_images(parameters: dict) -> Path | None:
    """The image store an experiment was trained on, where its photos are on this machine: None for a bucket (the
    page then says "no photo"), the default store for an experiment older than the record."""
    recorded = parameters.get("images")
    if recorded is None:
        return config.images_dir()
    return None if is_remote(recorded) else Path(recorded)


def text_table(frame: pd.DataFrame) -> str:
    return frame.to_string(index=False, float_format=lambda v: f"{v:.4f}", na_rep="-")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    try:
        experiments = analysis.load_experiments(args.db)
        for chosen in [args.experiment, *(args.compare or [])]:
            if chosen is not None and chosen not in experiments.index:
                raise analysis.AnalysisError(f"{schema.display_name(args.db)}: no experiment {chosen} (there are "
                                             f"{', '.join(map(str, experiments.index))})")
        predictions = analysis.load_predictions(args.db, args.split)
        parents = analysis.load_parents(args.db)
    except (analysis.AnalysisError, schema.SchemaError) as error:
        print(f"modeling.analyze: {error}", file=sys.stderr)
        return 2
    if args.drift:
        return drift_main(args, experiments, started)
    by_experiment, figures, decisions = experiment_tables(experiments, predictions, parents)
    detail_id = args.experiment if args.experiment is not None else (
        int(experiments.index[-1]) if args.html or args.plots else None)

    result: dict = {"db": schema.display_name(args.db), "split": args.split, "experiments": [
        {"id": int(e), "name": experiments.at[e, "name"], "created_at": experiments.at[e, "created_at"],
         "model": experiments.at[e, "parameters"].get("model"),
         "labels": registry.scored_on(experiments.at[e, "parameters"]),
         "figures": figures[e],
         "decisions": decisions[e].to_dict("records")} for e in experiments.index]}
    lines = []
    for entry in result["experiments"]:
        lines.append(f"experiment {entry['id']}: {entry['name']} ({entry['created_at']}, {entry['model']}), "
                     f"{args.split} split scored on {entry['labels']}")
        lines.append(text_table(figures_frame(entry["figures"])) if entry["figures"] else "  no predictions")
        if entry["decisions"]:
            lines += [f"{decisions_title(experiments.at[entry['id'], 'parameters'])}:",
                      text_table(decisions[entry["id"]][list(DECISION_COLUMNS)])]
        comparison = comparison_of(experiments, entry["id"])
        if comparison is not None:
            entry["champion"] = comparison
            lines += [f"{comparison_title(entry['id'], comparison)}:",
                      text_table(champion.comparison_table(comparison))]
        lines.append("")

    if detail_id is not None:
        rows = by_experiment[detail_id]
        categories = analysis.category_table(rows) if len(rows) else pd.DataFrame()
        confused = analysis.confused_pairs(rows) if len(rows) else pd.DataFrame()
        result["experiment"] = {"id": detail_id, "categories": categories.to_dict("records"),
                                "confused_pairs": confused.to_dict("records")}
        if args.experiment is not None:
            lines += [f"experiment {detail_id}: per category (worst F1 first)", text_table(categories), "",
                      f"experiment {detail_id}: most confused pairs (true -> predicted)", text_table(confused), ""]
        errors_file = None
        if args.html or args.plots:
            errors = analysis.most_confident_errors(rows, args.errors)
            images = args.images or recorded_images(experiments.at[detail_id, "parameters"])
            page = report.errors_page(errors, images, f"Experiment {detail_id}: the {len(errors)} most "
                                                      f"confident errors ({args.split} split)")
            targets = [args.html] if args.html else []
            if args.plots:
                targets.append(args.plots / "errors.html")
                errors_file = "errors.html"
            for target in targets:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(page, encoding="utf-8")
                lines.append(f"wrote {target}")
        if args.plots:
            curves = {f"{e}: {experiments.at[e, 'name']}": analysis.accuracy_coverage_curve(r)
                      for e, r in by_experiment.items() if len(r)}
            charts = [plots.accuracy_coverage_chart(curves, args.plots / "accuracy_coverage.png")]
            if len(rows):
                charts.append(plots.category_f1_chart(categories, args.plots / "category_f1.png"))
                stacked = analysis.branch_columns(rows, "stacked")
                charts.append(plots.confusion_chart(stacked["true"], stacked["predicted"],
                                                    args.plots / "confusion.png"))
            sections = report_sections(experiments, figures, decisions)
            sections.append((f"Experiment {detail_id}: most confused pairs", report.table(confused)))
            sections.append((f"Experiment {detail_id}: per category", report.table(categories)))
            index = args.plots / "index.html"
            index.write_text(report.index_page(f"Model report ({args.split} split)", sections,
                                               [c.name for c in charts], errors_file), encoding="utf-8")
            lines.append(f"wrote {len(charts)} charts and {index}")

    if args.compare:
        a, b = args.compare
        frame_a, frame_b = figures_frame(figures[a]).set_index("branch"), figures_frame(figures[b]).set_index("branch")
        difference = frame_b.subtract(frame_a, fill_value=None)
        labels_a, labels_b = (registry.scored_on(experiments.at[e, "parameters"]) for e in (a, b))
        result["compare"] = {"a": a, "b": b, "a_figures": figures[a], "b_figures": figures[b],
                             "a_labels": labels_a, "b_labels": labels_b, "same_labels": labels_a == labels_b,
                             "difference": json.loads(difference.to_json(orient="index"))}
        lines += [f"experiment {a} vs {b} ({args.split} split)"]
        if labels_a != labels_b:
            lines += [f"WARNING: not scored on the same labels: #{a} on {labels_a}, #{b} on {labels_b}; the "
                      "difference mixes the models' change with the labels' change", ""]
        for branch in frame_a.index.union(frame_b.index):
            side = pd.DataFrame({f"#{a}": frame_a.loc[branch] if branch in frame_a.index else None,
                                 f"#{b}": frame_b.loc[branch] if branch in frame_b.index else None})
            side["difference"] = difference.loc[branch] if branch in difference.index else None
            lines += [f"{branch}:", text_table(side.reset_index(names="figure")), ""]

    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print("\n".join(lines).rstrip())
    print(f"modeling.analyze: {len(predictions)} predictions analysed in {time.perf_counter() - started:.1f} s",
          file=sys.stderr)
    return 0


def drift_main(args: argparse.Namespace, experiments: pd.DataFrame, started: float) -> int:
    """``--drift``: the drift of the chosen experiment's model, printed (or as JSON), and as a page with --html."""
    serving = next((entry.experiment_id for entry in registry.entries(args.db) if entry.in_service), None)
    chosen = args.experiment if args.experiment is not None else (
        serving if serving is not None else int(experiments.index[-1]))
    experiment = experiments.loc[chosen]
    images = args.images or experiment["parameters"].get("images") or config.images_dir()
    try:
        found = drift.drift_report(args.db, experiment, images, since=args.since)
    except (analysis.AnalysisError, ModelFileError, DataError, BackboneError) as error:
        print(f"modeling.analyze: {error}", file=sys.stderr)
        return 2
    lines = [f"experiment {chosen}: drift of {found['model']}", *drift.drift_lines(found)]
    if args.html and found["recent_products"]:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(report.index_page(
            f"Drift of experiment {chosen} since {found['since']}",
            [(heading, report.table(frame)) for heading, frame in drift.drift_sections(found)], [], None,
            notes=lines[1:]), encoding="utf-8")
        lines.append(f"wrote {args.html}")
    print(json.dumps(found, indent=2, default=str) if args.json else "\n".join(lines))
    print(f"modeling.analyze: drift of {found['recent_products']} products in {time.perf_counter() - started:.1f} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
