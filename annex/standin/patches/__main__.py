"""`python -m annex.standin.patches -H HOST -p PORT`: moto's server with the patches applied."""

import sys

from . import serve

sys.exit(serve(sys.argv[1:]))
