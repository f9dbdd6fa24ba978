"""``python -m reqrunner``: the same as the ``reqrunner`` console script."""

import sys

from .cli import main

sys.exit(main())
