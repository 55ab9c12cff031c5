"""ae-report: the experiment report, regenerated from the checkpoint store.

Reports on the latest valid version of each model: a README.md (GitHub Markdown) and its PNG
figures in one folder. The same checkpoints give the same Markdown, byte for byte; the figures are
byte for byte the same on one machine, and within a few grey levels on another (see `build.header`).

`build` puts it together from `sources` (what it reads), `results` and `metrics` (the numbers),
`sections`, `latent` and `recipes` (the Markdown, with `markdown`'s helpers), `figures` and `charts`
(the drawings) and `output` (the folder); `cli` is the command.
"""

from training.report.build import build_report, generate_report
from training.report.cli import main
from training.report.sources import ReportError, latest_checkpoints

__all__ = ["ReportError", "build_report", "generate_report", "latest_checkpoints", "main"]
