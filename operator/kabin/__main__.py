"""`python -m kabin`: the same as the `kabin` command."""

from kabin.cli import main

main()
