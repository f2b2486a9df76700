"""``python -m fsm.cli`` runs the ``linkstate`` command line."""

import sys

from fsm.cli import main

sys.exit(main())
