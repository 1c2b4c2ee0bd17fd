"""``python -m napari_prunuclei.cli``: the `prunuclei` command."""

import sys

from napari_prunuclei.cli.main import main

sys.exit(main())
