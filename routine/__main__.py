"""``python -m routine``: the same as the ``routine`` command."""

import sys

from .cli import main

sys.exit(main())
