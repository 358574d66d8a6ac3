"""`python -m phenomena_bench` is the `phenomena-bench` command."""

import sys

from phenomena_bench.cli import main

sys.exit(main())
