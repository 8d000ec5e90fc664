"""`python -m tinymorph` runs the same entry point as the `tinymorph` console script."""

from tinymorph.cli import main

raise SystemExit(main())
