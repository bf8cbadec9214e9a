"""``python -m dealhunter_vectors``: the ``dealhunter-vectors`` console script."""

import sys

from .cli import main

sys.exit(main())
