#!/usr/bin/env python3
"""Build the index: the same code as `qa reindex`.

Usage: python scripts/reindex.py --source PATH [--index DIR] [--config FILE]
"""

import sys

from qa.cli import main

if __name__ == "__main__":
    sys.exit(main(["reindex", *sys.argv[1:]]))
