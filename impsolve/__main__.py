"""`python -m impsolve ...` is the `impsolve` command."""
import sys

from .cli import main

sys.exit(main())
