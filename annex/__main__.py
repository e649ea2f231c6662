from .cli.main import entry

entry(prog_name="condor_annex")
