"""The command line; `annex.cli.main.entry` is the console script."""
