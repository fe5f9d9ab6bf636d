"""`python3 -m stress` (with Stress/ on PYTHONPATH): runs the fault suite; see the package docstring."""
import sys

from .runner import main

sys.exit(main())
