"""Process-wide tuning that only the ``modelgit`` command (cli.main) may switch on: it owns its
process. A library call never changes its host's garbage collector or environment. Imports nothing,
so the command's start-up stays fast."""

tune_gc = False  # pause the cyclic GC during bulk loads and freeze what they built (snapshot.Loader)
