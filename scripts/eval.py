#!/usr/bin/env python3
"""Score answers on a question set: the same code as `qa eval`.

Usage: python scripts/eval.py --corpus corpus.jsonl --questions questions.jsonl [--lang ar|en] ...
"""

import sys

from qa.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]]))
