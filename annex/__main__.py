from .cli import main

main(prog_name="condor_annex")
