"""`python -m rvclora.cli`: the same as the `rvclora` command."""

import sys

from .main import main

sys.exit(main())
