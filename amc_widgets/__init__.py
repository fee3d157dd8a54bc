"""AMC - Automated Model Creator.

Copyright (C) 2026 the AMC contributors. Free software under the GNU Affero General Public License,
version 3 or (at your option) any later version: see LICENSE, and THIRD_PARTY.md for what it builds on.
"""

__version__ = "0.1.0"
