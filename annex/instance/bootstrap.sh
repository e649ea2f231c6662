#!/bin/bash
# condor_annex instance bootstrap (launch template user data).
# The template prepends ANNEX_BUCKET, ANNEX_STACK and ANNEX_REGION; see annex/template.py.
set -euo pipefail
: "${ANNEX_BUCKET:?set by the launch template}"
: "${ANNEX_STACK:?set by the launch template}"
: "${ANNEX_REGION:?set by the launch template}"
echo "condor_annex: bootstrap for ${ANNEX_STACK} (bucket ${ANNEX_BUCKET}, region ${ANNEX_REGION})"
