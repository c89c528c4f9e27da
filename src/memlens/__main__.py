"""``python -m memlens``: the command line (:mod:`memlens.cli`)."""
import sys

from .cli.main import main

if __name__ == "__main__":
    sys.exit(main())
