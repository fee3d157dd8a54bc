"""``python -m amc_widgets.serving``: the serving program (as ``container/train serve``)."""

import sys

from amc_widgets.serving.server import main

sys.exit(main())
