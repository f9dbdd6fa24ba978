"""``python -m reqrunner``: the same as the ``reqrunner`` console script."""

import sys

from .cli.main import main

sys.exit(main())
