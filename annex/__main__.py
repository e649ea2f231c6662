from .cli import entry

entry(prog_name="condor_annex")
