"""``python -m vicinal.cli``: the command line, as the console script runs it."""

from vicinal.cli import main

main()
