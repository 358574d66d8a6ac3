"""`phenomena-bench publish` and `pull`: the results store as a Hugging Face dataset, and back.

Needs the `publish` extra (pyarrow, datasets, huggingface_hub); without it these commands say so.

`publish` merges the store into what is published (rows are added, never removed; a differing record for a
key already published is reported and the published one kept unless ``--prefer-local``) and commits against
the head it read, so a concurrent publish fails instead of losing rows. `pull` writes only rows that verify
(a run key, a matching digest). These two commands are the only ones that keep Hub tokens in their
environment (see :mod:`phenomena_bench.cli`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from phenomena_bench.cli.options import add_store, add_tasks_dir, store_of, stored_records, tasks_dirs
from phenomena_bench.core.errors import BenchmarkError
from phenomena_bench.core.text import printable


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pub = sub.add_parser("publish", help="publish the results store as a Hugging Face dataset")
    pub.add_argument("--repo-id", required=True, help="dataset repository, ORG/NAME")
    pub.add_argument("--dry-run", action="store_true", help="build and check the folder, do not push")
    pub.add_argument("--out", default=None, help="where to build the folder (required with --dry-run)")
    pub.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing (community)")
    pub.add_argument("--private", action="store_true", help="create the repository private if it does not exist")
    pub.add_argument("--message", default=None, help="commit message")
    pub.add_argument("--tier", action="append", default=None, help="only this tier (repeatable)")
    pub.add_argument("--no-verify", action="store_true", help="skip reading the folder back with datasets")
    pub.add_argument(
        "--prefer-local",
        action="store_true",
        help="where a published run differs from the local record of the same key, publish the local one "
        "(reported either way; default: keep the published one)",
    )
    add_unverified(pub)
    add_tasks_dir(pub)
    add_store(pub)
    pub.set_defaults(func=publish)

    pull = sub.add_parser("pull", help="merge a published results dataset into the local store")
    pull.add_argument("--repo-id", default=None, help="dataset repository, ORG/NAME")
    pull.add_argument("--revision", default=None, help="branch, tag or commit (default: main)")
    pull.add_argument("--from-dir", default=None, help="a dataset folder on disk instead of the Hub")
    add_unverified(pull)
    add_store(pull)
    pull.set_defaults(func=pull_)


def add_unverified(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--unverified",
        choices=["refuse", "keep", "drop"],
        default="refuse",
        help="published rows that do not verify: refuse (stop, the default), keep (seal rows that only lack "
        "a digest, published before records had one; leave bad rows out), drop (leave all of them out)",
    )


def _note(line: str) -> None:
    print(f"note: {printable(line)}", file=sys.stderr)


def _hub() -> ModuleType:
    """The publishing module, or a clear error when the optional extra is missing."""
    try:
        from phenomena_bench.report import hub
    except ImportError as err:
        raise BenchmarkError(
            f"publishing needs the publish extra: pip install 'phenomena-bench[publish]' ({err})"
        ) from err
    return hub


def publish(args: argparse.Namespace) -> int:
    hub = _hub()
    records = stored_records(args, "publish")
    if not records:
        raise BenchmarkError(f"store {store_of(args).root} holds no runs to publish")
    if args.dry_run and not args.out:
        raise BenchmarkError("--dry-run needs --out DIR (the folder to write instead of pushing)")
    if args.dry_run:
        out = Path(args.out)
        folder = hub.build_folder(records, out, repo_id=args.repo_id, tasks_dir=tasks_dirs(args))
        if not args.no_verify:
            hub.verify_folder(folder, records)
        summary = ", ".join(f"{n} {k}" for k, n in folder.counts.items())
        print(
            f"dry run: wrote {out} ({summary}, this store only: not merged with the published dataset); a "
            f"publish would merge it into {args.repo_id}{' as a pull request' if args.create_pr else ''}"
        )
        return 0
    with tempfile.TemporaryDirectory(prefix="phenomena-bench-publish-") as tmp:
        url, merge, folder = hub.publish_merged(
            records,
            args.repo_id,
            Path(args.out) if args.out else Path(tmp),
            tasks_dir=tasks_dirs(args),
            create_pr=args.create_pr,
            private=args.private or None,
            message=args.message,
            prefer_local=args.prefer_local,
            unverified=args.unverified,
            verify=not args.no_verify,
            note=_note,
        )
    summary = ", ".join(f"{n} {k}" for k, n in folder.counts.items())
    print(
        f"published {summary} to {url} ({merge.added} run(s) added to {merge.kept} already published, "
        f"{len(merge.conflicts)} conflict(s))"
    )
    return 0


def pull_(args: argparse.Namespace) -> int:
    hub = _hub()
    store = store_of(args)
    if args.from_dir:
        published = hub.read_runs(Path(args.from_dir))
        source = args.from_dir
    else:
        if not args.repo_id or not hub.REPO_ID_RE.match(args.repo_id):
            raise BenchmarkError("pull needs --repo-id ORG/NAME (or --from-dir DIR)")
        with tempfile.TemporaryDirectory(prefix="phenomena-bench-pull-") as tmp:
            published = hub.read_runs(hub.download_runs(args.repo_id, args.revision, Path(tmp)))
        source = args.repo_id
    records = hub.unverified_policy(published, getattr(args, "unverified", "refuse"), _note)
    added, skipped, conflicts = hub.merge_into_store(records, store)
    for line in conflicts:
        _note(line)
    left_out = len(published.records) + len(published.legacy) + len(published.rejected) - len(records)
    print(
        f"pulled {len(records)} runs from {source}: {added} added to {store.root}, {skipped} already there"
        + (f", {left_out} left out (did not verify)" if left_out else "")
    )
    return 0
