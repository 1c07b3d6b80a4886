"""End-to-end fixtures: the stand-in server and the app as real processes (see tests/standin/fixtures.py).

Other suites reuse them the same way: `from tests.standin.fixtures import *  # noqa: F403`.
"""

from tests.standin.fixtures import *  # noqa: F403
