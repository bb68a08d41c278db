"""``python -m modelgit``: the ``modelgit`` command."""

from modelgit.cli import main

main()
