"""A recorded schedd: stands in for the htcondor2 module in the query subprocess (put first on its
PYTHONPATH), answering Schedd().query from job ads written with classad2, filtered by the constraint
and cut to the projection as a schedd does. Every query is appended to RECORDED_SCHEDD_LOG.

RECORDED_SCHEDD_ADS: a file of job ads (classad2 printJson, one after another).
RECORDED_SCHEDD_FAIL: if set, Schedd() fails with that message, as htcondor2 does without a schedd.
"""

import json
import os

import classad2

# classad2's C code finds its ClassAd type as htcondor2.classad: the real module has it too.
import classad2 as classad  # noqa: F401


class HTCondorException(Exception):
    pass


class Schedd:
    def __init__(self, location=None):
        failure = os.environ.get("RECORDED_SCHEDD_FAIL")
        if failure:
            raise HTCondorException(failure)
        with open(os.environ["RECORDED_SCHEDD_ADS"], encoding="utf-8") as recorded:
            self._ads = list(classad2.parseAds(recorded.read(), classad2.ParserType.JSON))

    def query(self, constraint="True", projection=(), callback=None, limit=-1, opts=0):
        _log(
            {
                "constraint": str(constraint),
                "projection": list(projection),
                "condor_config": os.environ.get("CONDOR_CONFIG"),
            }
        )
        wanted = classad2.ExprTree(str(constraint))
        return [_project(ad, projection) for ad in self._ads if wanted.eval(ad) is True]


def _project(ad, projection):
    if not projection:
        return ad
    kept = classad2.ClassAd()
    for name in projection:
        if name in ad:
            kept[name] = ad.lookup(name)
    return kept


def _log(entry):
    with open(os.environ["RECORDED_SCHEDD_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")
