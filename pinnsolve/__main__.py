"""``python -m pinnsolve`` (also what ``torchrun -m pinnsolve`` runs)."""

import sys

from .cli import main

sys.exit(main())
