"""``python -m flickertag ...``: the command line (see :mod:`flickertag._cli`)."""

from ._cli import main

main()
