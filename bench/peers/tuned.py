"""`aomi-runtime` with its ingress deployment's options changed, for settings the runtime does not offer yet.

    python bench/peers/tuned.py [--replicas N] [--max-ongoing M] -- serve --port P [other CLI options]

Runs the CLI itself (`aomi_runtime.serve_app.cli.main`) after replacing the ingress deployment with a copy that
has `num_replicas=N` and `max_ongoing_requests=M` (Serve's `Deployment.options`): the application is built
from that module's `Ingress` when the CLI deploys it. Used by bench/peers (the two-replica row) and bench/knobs.py.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from aomi_runtime.serve_app import app, cli


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, help="the ingress's num_replicas")
    parser.add_argument("--max-ongoing", type=int, help="the ingress's max_ongoing_requests")
    parser.add_argument("cli", nargs=argparse.REMAINDER, help="-- then the aomi-runtime command line")
    args = parser.parse_args()
    options: dict[str, Any] = {}
    if args.replicas is not None:
        options["num_replicas"] = args.replicas
    if args.max_ongoing is not None:
        options["max_ongoing_requests"] = args.max_ongoing
    if options:
        app.Ingress = app.Ingress.options(**options)  # type: ignore[misc,attr-defined]  # a Deployment, from the decorator
    return cli.main(args.cli[1:] if args.cli[:1] == ["--"] else args.cli)


if __name__ == "__main__":
    sys.exit(main())
