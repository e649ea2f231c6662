"""A local stand-in for an AWS account, for the demo, the bench scripts and the end-to-end tests.

- `annex.standin.server`: moto's server started as a real HTTP process on a free loopback port
  (`moto_server`, `start_moto_server`, `stop_server`, `reset_moto`, `free_port`), with moto patched in
  that process only (`annex/standin/patches/`): Lambda functions of zipped Python code run for
  real in a child interpreter, and CloudFormation custom resources are created, updated and deleted
  through them as CloudFormation does.
- `annex.standin.account`: `prepare_account`, what the seed's Quick Start has an administrator do by hand.
- `annex.standin.pool`: `write_pool`, a personal-condor style pool configuration.

moto is a test and demo dependency only (setup.cfg's `test` extra): none of these modules imports it,
and nothing in annex/ outside this package imports this package. This file imports nothing.
"""
