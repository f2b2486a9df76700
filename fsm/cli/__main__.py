"""``python -m linkstate.cli`` runs the ``linkstate`` command line."""

import sys

from linkstate.cli import main

sys.exit(main())
