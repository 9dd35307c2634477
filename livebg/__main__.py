"""``python -m livebg`` is the ``livebg`` command."""

import sys

from livebg.cli import main

sys.exit(main())
