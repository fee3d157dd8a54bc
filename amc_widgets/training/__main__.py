"""``python -m amc_widgets.training``: the training container's entry point (as container/train)."""

import sys

from amc_widgets.training.launcher import main

sys.exit(main())
