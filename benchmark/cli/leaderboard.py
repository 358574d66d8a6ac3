"""`phenomena-bench leaderboard build|markdown`: the static site, or the tables as Markdown."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from phenomena_bench.cli.options import add_store, add_tasks_dir, store_of, stored_records, tasks_dirs
from phenomena_bench.core.errors import BenchmarkError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("leaderboard", help="build the static leaderboard site or Markdown tables")
    commands = parser.add_subparsers(dest="leaderboard_command", required=True)
    build = commands.add_parser("build", help="write the static site (HTML, CSS, SVG plots, JSON) into a folder")
    build.add_argument("--out", required=True, help="folder to write the site into")
    md = commands.add_parser("markdown", help="print the leaderboard as Markdown tables")
    md.add_argument("--out", default=None, help="write to this file instead of stdout")
    for p in (build, md):
        add_store(p)
        p.add_argument("--tier", action="append", default=None, help="only this tier (repeatable)")
    add_tasks_dir(build)
    build.add_argument("--submissions-dir", default="submissions", help="submission manifests (for 'submitted by')")
    build.add_argument(
        "--source-url",
        default=None,
        help="base URL of the repository's files, e.g. https://github.com/ORG/REPO/blob/main/",
    )
    build.set_defaults(func=build_site)
    md.set_defaults(func=markdown)


def build_site(args: argparse.Namespace) -> int:
    from phenomena_bench.core.measurement import MeasurementStore
    from phenomena_bench.report import site

    records = stored_records(args, "leaderboard")
    if args.source_url and not site.safe_url(args.source_url):
        raise BenchmarkError(f"--source-url {args.source_url!r} is not an absolute http(s) URL")
    measurements, problems = MeasurementStore(store_of(args).root).scan()
    for problem in problems:
        print(f"leaderboard: skipping {problem}", file=sys.stderr)
    data = site.collect(
        records,
        tasks_dir=tasks_dirs(args),
        submissions_dir=Path(args.submissions_dir),
        source_url=args.source_url,
        measurements=measurements,
    )
    pages = site.build_site(data, Path(args.out))
    print(f"wrote {len(pages)} pages from {len(records)} records to {args.out} (open {Path(args.out) / 'index.html'})")
    return 0


def markdown(args: argparse.Namespace) -> int:
    from phenomena_bench.analysis.rows import aggregate, family_summary
    from phenomena_bench.analysis.tables import build_tables
    from phenomena_bench.report import markdown as md

    records = stored_records(args, "leaderboard")
    rows = aggregate(records)
    text = md.leaderboard(build_tables(rows), family_summary(rows, records))
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
