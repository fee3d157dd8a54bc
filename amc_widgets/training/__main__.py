"""``python -m amc_widgets.training [train|serve]``: the container's entry point (as container/train)."""

import sys

from amc_widgets.entry import main

sys.exit(main())
