"""``python -m theorybench``: the same command line as the ``theorybench`` console script."""

import sys

from .cli import main

sys.exit(main())
