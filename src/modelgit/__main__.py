"""``python -m modelgit``: the ``modelgit`` command."""

from modelgit.cli import main

if __name__ == "__main__":  # a child that imports this module (a spawn start method) runs nothing
    main()
