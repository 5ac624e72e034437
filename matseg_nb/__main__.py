import sys

from matseg_nb.cli import main

sys.exit(main())
