"""``python -m dealhunter_vectors.cli``: the console script."""

import sys

from . import main

sys.exit(main())
