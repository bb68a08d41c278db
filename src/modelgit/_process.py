"""Process-wide tuning that only the ``modelgit`` command (cli.main) may switch on: it owns its
process. A library call never changes its host's garbage collector or environment. Imports nothing,
so the command's start-up stays fast."""

tune_gc = False  # pause the cyclic GC during bulk loads and freeze what they built (snapshot.Loader)
# Helper processes that parse uncached registry files alongside this one (snapshot.Loader via
# _parsework); 0 = parse in this process only, as every library call does.
parse_helpers = 0
