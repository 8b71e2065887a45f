"""``python -m logpipe`` is the same as the ``logpipe`` console script."""

from logpipe.cli import main

main()
