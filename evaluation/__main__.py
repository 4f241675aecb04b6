"""``python -m evaluation LABELLED [options]`` (see ``--help`` and evaluation/README.md)."""

import sys

from evaluation.cli import main

if __name__ == "__main__":
    sys.exit(main())
