"""``python -m matseg_nb.sweep PROFILE --out DIR ...`` is ``matseg sweep PROFILE --out DIR ...``."""

import sys

from matseg_nb.cli import main

sys.exit(main(["sweep", *sys.argv[1:]]))
