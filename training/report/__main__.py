"""`python -m training.report`: the same as `ae-report`."""

import sys

from training.report.cli import main

sys.exit(main())
