"""``python -m modeling.review``: serve the review app (pages and JSON API) for a crawl database and a model.

It binds 127.0.0.1 unless told otherwise; any other address needs a token, and every page, write and API call then
needs it: one shared by every reviewer (--token or SHOPSTYLE_REVIEW_TOKEN), or better one per reviewer (--tokens
FILE or SHOPSTYLE_REVIEW_TOKENS: name=token lines), so each signs in as themselves and no one can decide as another.
Tokens are never printed, logged or stored. It answers only requests for its own host names (the loopback names,
--host when it names one address, and each --allowed-host). Its signing key is kept beside the database
(DB.review-key, mode 0600), so sign-ins and open forms outlive a restart.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import uvicorn

from shopstyle_spider import cli, config, schema

from ..filing import DEFAULT_TARGET, TARGETS, levels_argument
from ..photo_store import crawl_images, is_remote
from ..registry import RegistryError, serving_path
from ..runtime import RUNTIME_HELP, RUNTIMES
from .app import MAX_BODY_BYTES, create_app
from .security import LOOPBACK_HOSTS, TokenFileError, is_loopback, reviewer_tokens

TOKEN_VARIABLE = "SHOPSTYLE_REVIEW_TOKEN"
TOKENS_VARIABLE = "SHOPSTYLE_REVIEW_TOKENS"
WILDCARD_ADDRESSES = ("0.0.0.0", "::", "")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m modeling.review", description=__doc__,
                                     formatter_class=cli.HelpFormatter)
    parser.add_argument("--db", type=schema.location, default=config.crawl_db(),
                        help="the crawl database: its filing queue, the audit's label issues, where reviews go")
    parser.add_argument("--model", type=Path,
                        help="a .joblib model written by modeling.train (a pickle: load only models you trust), "
                             "pinned: the app serves it whatever is promoted; default: the --db's model in service "
                             "(python -m modeling.models current), followed: a model promoted later is served within "
                             "a few seconds, without a restart")
    parser.add_argument("--images", type=Path,
                        help="the image store: the only folder photos are served from (default: the folder the "
                             f"--db's crawl recorded it stored its photos in, else {config.images_dir()})")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind; other than loopback needs a token")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (0: any free port)")
    parser.add_argument("--token", help=f"a token shared by every reviewer (default: ${TOKEN_VARIABLE} if set, which "
                                        "is better: other users see a command line in ps)")
    parser.add_argument("--tokens", type=Path, help="a file of name=token lines, a token per reviewer: each signs "
                                                    f"in as the name of their token (default: ${TOKENS_VARIABLE}, the "
                                                    "same lines, if set)")
    parser.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                        help="a host name the app answers besides " + ", ".join(LOOPBACK_HOSTS) + " and --host "
                             "(repeat it; the name a proxy in front of the app forwards)")
    parser.add_argument("--max-body", type=int, default=MAX_BODY_BYTES, help="largest request body, in bytes")
    parser.add_argument("--target-accuracy", type=float, choices=TARGETS, default=DEFAULT_TARGET,
                        help="the accuracy /api/predict's decisions reach, by the model card's thresholds")
    levels_argument(parser, "where /api/predict may file a product, as modeling.predict --levels: 'leaf' files at "
                            "the leaf or sends to a person, never at the parent; 'leaf,parent' also files at the "
                            "parent")
    parser.add_argument("--image-runtime", choices=RUNTIMES, default="auto", help=RUNTIME_HELP)
    parser.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True,
                        help="uvicorn's line per request on stdout (--no-access-log: about 0.15 ms less a request, "
                             "for an import job's stream of /api/predict calls; start-up and errors still logged)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    token = args.token or os.environ.get(TOKEN_VARIABLE) or None
    try:
        if args.tokens is not None:
            reviewers = reviewer_tokens(args.tokens.read_text(encoding="utf-8"), str(args.tokens))
        elif os.environ.get(TOKENS_VARIABLE):
            reviewers = reviewer_tokens(os.environ[TOKENS_VARIABLE], f"${TOKENS_VARIABLE}")
        else:
            reviewers = None
    except (OSError, TokenFileError) as error:
        parser.error(str(error))
    if token and reviewers:
        parser.error("a shared token (--token) or a token per reviewer (--tokens), not both")
    if not is_loopback(args.host) and not (token or reviewers):
        parser.error(f"--host {args.host} lets other machines in: give tokens (--tokens, --token or "
                     f"${TOKEN_VARIABLE})")
    if args.host in WILDCARD_ADDRESSES and not args.allowed_host:
        parser.error(f"--host {args.host} takes requests for any name: say which it answers (--allowed-host NAME, "
                     "the name other machines reach it by)")
    bound = [] if args.host in WILDCARD_ADDRESSES else [f"[{args.host}]" if ":" in args.host else args.host]
    follow = args.model is None
    if follow:
        try:
            args.model = serving_path(args.db)
        except (RegistryError, schema.SchemaError) as error:
            print(f"modeling.review: {error}", file=sys.stderr)
            return 2
    if args.images is None:
        try:
            recorded = crawl_images(args.db, None)
        except schema.SchemaError as error:
            print(f"modeling.review: {error}", file=sys.stderr)
            return 2
        # a bucket's photos are served from nowhere: the app serves one local folder
        args.images = config.images_dir() if is_remote(recorded) else Path(recorded)
    if not args.model.is_file():
        print(f"modeling.review: {args.model}: no model file there (train one with `python -m modeling.train`)",
              file=sys.stderr)
        return 2
    app = create_app(args.db, args.model, args.images, token=token, reviewers=reviewers,
                     allowed_hosts=[*LOOPBACK_HOSTS, *bound, *args.allowed_host], max_body=args.max_body,
                     target_accuracy=args.target_accuracy, levels=args.levels.split(","),
                     image_runtime=args.image_runtime, follow=follow)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=args.access_log)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
