import sys

from msgr2tx.cli import main

sys.exit(main())
