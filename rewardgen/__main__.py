import sys

from rewardgen.cli import main

sys.exit(main())
