"""ae-report's command line: a clear one-line error and exit status 1 for anything it cannot report on."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from models import CheckpointError
from training.data import DATA_DIR_RULE, DATASETS, DataNotFoundError
from training.report.build import generate_report
from training.report.sources import ReportError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ae-report", description="The experiment report, regenerated from the checkpoint store."
    )
    parser.add_argument("--store", type=Path, default=Path("checkpoints"), help="checkpoint store")
    parser.add_argument("--out", type=Path, default=Path("docs/report"), help="report folder (default: docs/report)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help=f"data root (default: {DATA_DIR_RULE})",
    )
    parser.add_argument("--no-download", action="store_true", help="fail instead of downloading missing files")
    parser.add_argument("--dataset", default="mnist", choices=list(DATASETS), help="report on models of this data set")
    parser.add_argument(
        "--reference",
        type=Path,
        metavar="STORE",
        help='a store of reference-recipe runs to compute the "Recipes compared" section from; without it, '
        "that section of the report in --out is kept as it is, if the checkpoints are the same",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        generate_report(args.store, args.out, args.data_dir, not args.no_download, args.dataset, args.reference)
    except (DataNotFoundError, CheckpointError, ReportError) as e:
        parser.exit(1, f"ae-report: error: {e}\n")
    return 0
