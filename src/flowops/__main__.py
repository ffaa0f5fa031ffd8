import sys

from flowops.cli import main

sys.exit(main())
