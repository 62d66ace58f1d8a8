"""`python -m bench [NAME ...] [--quick|--smoke] [--full]`: run benchmarks, print one JSON document."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
import traceback

from bench import Options, load_all


def main(argv: list[str] | None = None) -> int:
    registry = load_all()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run (default: all): {', '.join(registry)}")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and samples")
    parser.add_argument("--smoke", action="store_true", help="tiny run that only checks every path works (tests)")
    parser.add_argument("--full", action="store_true", help="real sizes: seed 1,000,000 customers")
    parser.add_argument("--keep", action="store_true", help="keep seeded databases (cached by size) for the next run")
    parser.add_argument("--backend", action="append", choices=["sqlite", "postgres"],
                        help="only these databases (default: both)")
    parser.add_argument("--pg-admin-url", default=os.environ.get("CLARITY_BENCH_PG_URL")
                        or os.environ.get("CLARITY_TEST_PG_URL") or "postgresql://postgres@127.0.0.1:5432/postgres",
                        help="PostgreSQL server for scratch databases (env CLARITY_BENCH_PG_URL)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list:
        for bench in registry.values():
            print(f"{bench.name:10} {bench.description}")
        return 0
    unknown = [n for n in args.names if n not in registry]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}: choose from {', '.join(registry)}")
    options = Options(quick=args.quick or args.smoke, smoke=args.smoke, full=args.full, keep=args.keep,
                      pg_admin_url=args.pg_admin_url, backends=tuple(args.backend or ("sqlite", "postgres")))
    report: dict[str, object] = {
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_average": list(os.getloadavg())},
        "mode": "smoke" if args.smoke else "quick" if args.quick else "full" if args.full else "standard",
        "benchmarks": {},
    }
    failed = False
    for name in args.names or list(registry):
        started = time.perf_counter()
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        try:
            result = registry[name].run(options)
        except Exception as exc:  # noqa: BLE001 - report it and run the others
            failed = True
            traceback.print_exc()
            result = {"error": f"{type(exc).__name__}: {exc}"}
        result["seconds"] = round(time.perf_counter() - started, 2)
        report["benchmarks"][name] = result  # type: ignore[index]
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
