"""``python -m clientreg`` is the ``clientreg`` command."""

from .cli import main

main()
