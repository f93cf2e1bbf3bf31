import sys

from jobs.shells.cli import main

sys.exit(main())
