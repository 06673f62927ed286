"""``python -m modeling.models``: the models a crawl database's trainings saved, and the one in service.

``list`` shows every registered model (the one in service marked ``*``), ``show N`` one model's card, labels,
checksum and promotions, ``current`` the model in service, and ``promote N`` puts model N in service, saying which
model it replaces. ``predict``, ``review`` and ``audit --model`` load the model in service when not given a file.
"""

from __future__ import annotations

import argparse
import json
import sys

from shopstyle_spider import cli, config, schema

from .filing import LEVELS, level_rule, short_percent
from .registry import ModelEntry, RegistryError, entries, entry, promote, scored_on, serving_path, whoami


def shared_options(parser: argparse.ArgumentParser) -> None:
    """The options of every subcommand, accepted before or after it (``cli.subcommands``)."""
    parser.add_argument("--db", type=schema.location, default=config.crawl_db(),
                        help="the crawl database whose models these are: a sqlite file or a postgresql:// URL")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m modeling.models", description=__doc__,
                                     formatter_class=cli.HelpFormatter)
    commands = cli.subcommands(parser, shared_options, dest="command", required=True)
    commands.add_parser("list", help="every registered model, the one in service marked *")
    show = commands.add_parser("show", help="one model: card, labels, checksum, promotions")
    show.add_argument("model", type=int, help="the model's number (its experiment id)")
    commands.add_parser("current", help="the model in service")
    promoting = commands.add_parser("promote", help="put a model in service (says which one it replaces)")
    promoting.add_argument("model", type=int, help="the model's number (its experiment id)")
    promoting.add_argument("--by", default=whoami(), help="who promotes it, as recorded")
    promoting.add_argument("--reason", default="by hand", help="why, as recorded")
    return parser


def entry_line(entry: ModelEntry) -> str:
    promoted = entry.promotions[-1] if entry.promotions else None
    when = f"promoted {promoted['promoted_at']} by {promoted['promoted_by']}" if promoted else "never promoted"
    return (f"{'*' if entry.in_service else ' '} {entry.experiment_id:>4}  {entry.created_at}  "
            f"{entry.labels.get('labels', '?')} labels  {when}  {entry.name}  {entry.path}")


def show_lines(entry: ModelEntry) -> list[str]:
    """One model's card for people: shares as percentages, and a filing level that never files says so and why."""
    card = json.loads(entry.card_path.read_text(encoding="utf-8")) if entry.card_path.is_file() else {}
    test = card.get("metrics", {}).get("test", {}).get("stacked", {})
    lines = [f"model {entry.experiment_id}: {entry.name}{' (in service)' if entry.in_service else ''}",
             f"  file: {entry.path} (sha256 {entry.sha256})", f"  card: {entry.card_path}",
             f"  trained: {entry.created_at} on {scored_on(entry.labels)}",
             f"  test accuracy: {short_percent(test['accuracy'])} over {test.get('n', 0)} products"
             if "accuracy" in test else "  test accuracy: not on its card"]
    for target, chosen in card.get("filing", {}).items():
        lines.append(f"  files at {short_percent(float(target))} accuracy:")
        lines += [f"    {level_rule(chosen, level)}" for level in LEVELS]
    lines += [f"  promoted {p['promoted_at']} by {p['promoted_by']} ({p['reason']}), replacing "
              f"{p['replaces'] if p['replaces'] is not None else 'none'}" for p in entry.promotions]
    return lines


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "list":
            print("\n".join(map(entry_line, entries(args.db))) or f"{schema.display_name(args.db)}: no models")
        elif args.command == "current":
            path = serving_path(args.db)
            print(entry_line(next(e for e in entries(args.db) if e.path == path)))
        elif args.command == "show":
            print("\n".join(show_lines(entry(args.db, args.model))))
        else:
            replaced = promote(args.db, args.model, by=args.by, reason=args.reason)
            if replaced == args.model:
                print(f"model {args.model} is already in service")
            else:
                print(f"model {args.model} is in service, replacing "
                      f"{f'model {replaced}' if replaced is not None else 'no model'}")
    except (RegistryError, schema.SchemaError, OSError, ValueError) as error:
        print(f"modeling.models: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
