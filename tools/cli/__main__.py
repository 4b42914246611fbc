"""``python -m tools.cli``: the ``suyuan`` command."""

import sys

from tools.cli import main

sys.exit(main())
