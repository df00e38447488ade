"""``python -m tagscope``: the same as the ``tagscope`` command."""

from tagscope.cli import main

main()
