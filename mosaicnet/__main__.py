"""Allow ``python -m mosaicnet``."""

import sys

from mosaicnet.cli import main

sys.exit(main())
