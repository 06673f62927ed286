"""``python -m shopstyle_spider.sandbox``: serve a catalog, print ``SANDBOX_URL=...``, run until signalled."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from datetime import date
from pathlib import Path

from .. import cli
from .catalog import CatalogError
from .faults import Faults, FaultSpecError, parse_spec
from .loading import load_catalog
from .process import URL_PREFIX
from .ratelimit import RateLimiter
from .server import RESULT_CAP, CountingSite, Sandbox, build_site
from .synthetic import Gaps


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m shopstyle_spider.sandbox",
        description="A local ShopStyle API v2 (categories, products, product by id, images) over a catalog. "
                    f"On start it prints one line '{URL_PREFIX}http://HOST:PORT/api/v2' to stdout.",
        formatter_class=cli.HelpFormatter,
    )
    parser.add_argument("--catalog", default="synthetic",
                        help="what to serve: 'synthetic' (generated, deterministic for --seed), "
                             "'fashion:PATH' (the layout of shared/datasets/fashion) or 'jsonl:PATH' "
                             "(records like shared/datasets/shopstyle-sample/products.jsonl)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the synthetic catalog and of every catalog's timeline (--as-of)")
    parser.add_argument("--as-of", type=date.fromisoformat, default=None, metavar="YYYY-MM-DD",
                        help="serve the catalog as it stood at the end of that day: products arrive over 2025, "
                             "about 3%% a month leave, a few arrive mis-filed and are re-filed later, prices and "
                             "stock move, now and then a leaf appears (see shopstyle_spider.sandbox.timeline); "
                             "default: every product the catalog ever held, frozen, without dates")
    parser.add_argument("--products-per-category", type=int, default=60,
                        help="products in each leaf of the synthetic catalog")
    parser.add_argument("--no-photo-rate", type=float, default=Gaps.no_photo,
                        help="share of the synthetic catalog's products that offer no photo")
    parser.add_argument("--broken-photo-rate", type=float, default=Gaps.broken_photo,
                        help="share of the synthetic catalog's products whose photo URLs answer 404")
    parser.add_argument("--no-description-rate", type=float, default=Gaps.no_description,
                        help="share of the synthetic catalog's products without a description")
    parser.add_argument("--categories-file", type=Path, default=None,
                        help="leaf category paths for a jsonl catalog (default: categories.txt beside the JSONL)")
    parser.add_argument("--api-key", default="sandbox-key",
                        help="the only key (pid) accepted; others get 403, none gets 401")
    parser.add_argument("--rate-limit", type=int, default=750,
                        help="API requests per minute per key, as the real API; beyond it 429 with Retry-After "
                             "(0 turns it off; images are never limited)")
    parser.add_argument("--result-cap", type=int, default=RESULT_CAP,
                        help="no result past this offset is returned while total stays true (the real API's "
                             "cap); a small one tests a client's slicing on a small catalog")
    parser.add_argument("--rate-burst", type=int, default=None,
                        help="requests a key may send back to back before the per-minute pace applies "
                             "(default: the whole minute's budget)")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="seconds every answer is held back (without blocking others), to stand in for the "
                             "round trip to a distant API in benchmarks")
    parser.add_argument("--faults", default="",
                        help="inject faults: comma-separated kind=rate (0..1), 'all=RATE' for every kind. Each "
                             "request may be struck at random, so a retry can succeed: 500; 429 (Retry-After 1); "
                             "slow (answer held --slow-seconds); reset (connection dropped); badjson (JSON cut in "
                             "half); truncated-image (photo cut off mid-transfer). Data kinds stick to a product "
                             "every time it is served: "
                             "not-image (HTML served as image/jpeg); bomb (a PNG claiming 40000x40000 pixels); "
                             "duplicate (listed twice in its leaf and once in another); missing-field (no name); "
                             "huge-text (a 1 MB description); bad-chars (control characters and a lone surrogate). "
                             "schema serves bodies of the wrong shape: an answer with a mistyped key (per request), "
                             "products in one of several wrong shapes (sticky), and a category tree with entries "
                             "that are not categories, an orphan and a cycle. "
                             "Example: --faults 500=0.1,badjson=0.05,bomb=0.01 (default: no faults)")
    parser.add_argument("--fault-seed", type=int, default=0, help="seed of the fault draws")
    parser.add_argument("--slow-seconds", type=float, default=30.0, help="how long a 'slow' fault holds an answer")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback keeps it private)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (0: any free port)")
    args = parser.parse_args(argv)
    try:
        args.fault_rates = parse_spec(args.faults)
    except FaultSpecError as error:
        parser.error(str(error))
    if args.products_per_category < 0:
        parser.error("--products-per-category must be >= 0")
    try:
        args.gaps = Gaps(args.no_photo_rate, args.broken_photo_rate, args.no_description_rate)
    except ValueError as error:
        parser.error(str(error))
    if args.rate_limit < 0:
        parser.error("--rate-limit must be >= 0 (0 turns it off)")
    if args.rate_burst is not None and args.rate_burst < 1:
        parser.error("--rate-burst must be >= 1")
    if args.result_cap < 1:
        parser.error("--result-cap must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    try:
        catalog = load_catalog(args.catalog, seed=args.seed, products_per_category=args.products_per_category,
                               categories_file=args.categories_file, gaps=args.gaps, as_of=args.as_of)
    except (CatalogError, OSError) as error:
        print(f"sandbox: cannot load catalog: {error}", file=sys.stderr)
        return 2

    from twisted.internet import reactor
    from twisted.internet.error import CannotListenError

    faults = Faults(args.fault_rates, args.fault_seed, args.slow_seconds)
    sandbox = Sandbox(catalog, args.api_key, RateLimiter(args.rate_limit, args.rate_burst), faults,
                      result_cap=args.result_cap)
    site = CountingSite(build_site(sandbox, args.latency))
    try:
        port = reactor.listenTCP(args.port, site, interface=args.host)
    except CannotListenError as error:
        print(f"sandbox: cannot listen on {args.host}:{args.port}: {error.socketError}", file=sys.stderr)
        return 2
    host = f"[{args.host}]" if ":" in args.host else args.host
    sandbox.base_url = f"http://{host}:{port.getHost().port}"

    def announce() -> None:
        # Only once the reactor runs: a parent that signals as soon as it reads the URL must find a server that
        # shuts down cleanly, not one still starting.
        print(f"{URL_PREFIX}{sandbox.base_url}/api/v2", flush=True)

    def shut_down(signum, frame) -> None:
        reactor.callFromThread(reactor.stop)

    # Explicit handlers: a process started from a non-interactive shell's background job inherits SIGINT ignored,
    # and Twisted then leaves it ignored, so Ctrl-C (or a test's SIGINT) would not stop the server.
    signal.signal(signal.SIGINT, shut_down)
    signal.signal(signal.SIGTERM, shut_down)
    reactor.callWhenRunning(announce)
    print(f"sandbox: serving the {catalog.name} catalog: {len(catalog)} products in {len(catalog.leaves())} leaf "
          f"categories (loaded in {time.monotonic() - started:.1f}s); rate limit "
          f"{args.rate_limit or 'off'}{'/min' if args.rate_limit else ''}; faults "
          f"{', '.join(f'{k}={v}' for k, v in args.fault_rates.items() if v) or 'none'}; stop with Ctrl-C",
          file=sys.stderr, flush=True)
    reactor.run()
    print(f"sandbox: {site.summary()}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
