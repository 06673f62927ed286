"""``python -m modeling.review``: serve the review app (pages and JSON API) for a crawl database and a model.

It binds 127.0.0.1 unless told otherwise; any other address needs a token (--token or SHOPSTYLE_REVIEW_TOKEN),
and every page, write and API call then needs it. The token is never printed or logged.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import uvicorn

from shopstyle_spider import config, schema

from ..filing import DEFAULT_TARGET, TARGETS
from ..photo_store import crawl_images, is_remote
from ..registry import RegistryError, serving_path
from ..runtime import RUNTIME_HELP, RUNTIMES
from .app import MAX_BODY_BYTES, create_app
from .security import is_loopback

TOKEN_VARIABLE = "SHOPSTYLE_REVIEW_TOKEN"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m modeling.review", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--db", type=schema.location, default=config.crawl_db(),
                        help="the crawl database: its filing queue, the audit's label issues, where reviews go")
    parser.add_argument("--model", type=Path,
                        help="a .joblib model written by modeling.train (a pickle: load only models you trust); "
                             "default: the --db's model in service (python -m modeling.models current)")
    parser.add_argument("--images", type=Path,
                        help="the image store: the only folder photos are served from (default: the folder the "
                             f"--db's crawl recorded it stored its photos in, else {config.images_dir()})")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind; other than loopback needs a token")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (0: any free port)")
    parser.add_argument("--token", help=f"the token every page and API call must carry (None: ${TOKEN_VARIABLE} "
                                        "if set, which is better: other users see a command line in ps)")
    parser.add_argument("--max-body", type=int, default=MAX_BODY_BYTES, help="largest request body, in bytes")
    parser.add_argument("--target-accuracy", type=float, choices=TARGETS, default=DEFAULT_TARGET,
                        help="the accuracy /api/predict's decisions reach, by the model card's thresholds")
    parser.add_argument("--image-runtime", choices=RUNTIMES, default="auto", help=RUNTIME_HELP)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    token = args.token or os.environ.get(TOKEN_VARIABLE) or None
    if not is_loopback(args.host) and not token:
        parser.error(f"--host {args.host} lets other machines in: give a token (--token or ${TOKEN_VARIABLE})")
    if args.model is None:
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
    app = create_app(args.db, args.model, args.images, token=token, max_body=args.max_body,
                     target_accuracy=args.target_accuracy, image_runtime=args.image_runtime)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
