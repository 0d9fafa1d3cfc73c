"""``python -m zeroseg`` (and ``torchrun -m zeroseg train ...``)."""

import sys

from zeroseg.cli import main

sys.exit(main())
