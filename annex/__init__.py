"""condor_annex: rent AWS instances for an HTCondor pool until a deadline, and be sure they stop costing money."""

__version__ = "0.1.0"
