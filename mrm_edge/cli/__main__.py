"""``python -m mrm_edge.cli``: the same as the ``mrm-edge`` console script."""

import sys

from mrm_edge.cli import main

sys.exit(main())
