"""ae-models: the versions in a checkpoint store with their metrics and aliases; promote and roll back.

A running service follows the store: a promotion or rollback here goes live there without a restart.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from models.aliases import LATEST, STABLE, AliasError
from models.checkpoint import CheckpointError
from models.store import CheckpointStore, InvalidNameError


def _write(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def list_versions(store: CheckpointStore, names: list[str]) -> None:
    _write(f"{'model':<22} {'version':>7}  {'aliases':<15} {'test MSE':>9} {'train MSE':>9} {'epochs':>6}  created")
    for name in names or store.names():
        versions = store.versions(name)
        try:
            stable: int | str | None = store.stable(name)
        except AliasError as e:
            stable = f"unreadable ({e})"
        for version in versions:
            marks = ((STABLE, version == stable), (LATEST, version == versions[-1]))
            aliases = [alias for alias, is_it in marks if is_it]
            try:
                meta = store.load(name, version).metadata
            except CheckpointError as e:
                _write(f"{name:<22} {version:>7}  {','.join(aliases):<15} broken: {e.reason}")
                continue
            metrics = meta["metrics"]
            _write(
                f"{name:<22} {version:>7}  {','.join(aliases):<15} {metrics.get('test_mse', float('nan')):>9.5f} "
                f"{metrics.get('train_mse', float('nan')):>9.5f} {meta.get('epochs', ''):>6}  {meta.get('created', '')}"
            )
        if isinstance(stable, str):
            _write(f"{name:<22} the alias file is {stable}")


def history(store: CheckpointStore, name: str) -> None:
    for entry in store.aliases(name).history:
        _write(f"{entry.at}  {entry.alias} -> {entry.version} (was {entry.previous or LATEST})  by {entry.by}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ae-models", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--store", type=Path, default=Path("checkpoints"), help="default: checkpoints")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="every version with its metrics and aliases")
    listing.add_argument("names", nargs="*", metavar="NAME", help="only these models")
    promote = commands.add_parser("promote", help="make VERSION the stable version of NAME")
    promote.add_argument("name")
    promote.add_argument("version", type=int)
    rollback = commands.add_parser("rollback", help="move NAME's stable version back to the one before")
    rollback.add_argument("name")
    commands.add_parser("history", help="NAME's alias changes, oldest first").add_argument("name")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    store = CheckpointStore(args.store)
    by = f"ae-models {args.command} ({getpass.getuser()})"
    try:
        if args.command == "list":
            list_versions(store, args.names)
        elif args.command == "history":
            history(store, args.name)
        else:
            promoting = args.command == "promote"
            done = store.promote(args.name, args.version, by) if promoting else store.rollback(args.name, by)
            _write(f"{args.name}: {STABLE} is now version {done.version} (was {done.previous or LATEST})")
    except (AliasError, CheckpointError, InvalidNameError) as e:
        parser.exit(1, f"ae-models: error: {e}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
