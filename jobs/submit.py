"""The file spark-submit runs: `spark-submit [options] jobs/submit.py --conf PATH --job-id ID`
(docs/operations.md#spark-submit). Its code is jobs.shells.submit."""

import sys
from pathlib import Path

if __package__ in (None, ""):
    # Run as a file by spark-submit: import the package from --py-files, or from beside this file.
    sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from jobs.shells.submit import main

if __name__ == "__main__":
    sys.exit(main())
