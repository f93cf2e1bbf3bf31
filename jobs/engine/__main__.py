import sys

from jobs.engine.session import main

sys.exit(main())
