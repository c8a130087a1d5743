"""``python -m starter.cli``: the ``nudge`` command, as the stack supervisor and the tests run it."""

from starter.cli import main

main()
