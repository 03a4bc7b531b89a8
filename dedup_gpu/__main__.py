"""`python -m dedup_gpu` runs the command line."""

from .cli import main

main()
