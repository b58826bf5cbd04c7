"""Test-suite settings shared by every test module.

Hypothesis runs derandomized with few examples under CI (CI=true), so the suite is repeatable and
fast on 2 cores; locally the "dev" profile explores more.
"""

import os
import tempfile

# Before any theorybench import reads it: runs trained by tests (tiny figure renders, notebooks) go to
# a throw-away store, never into the user's ./runs, and every test session starts from none.
os.environ.setdefault("THEORYBENCH_RUNS", tempfile.mkdtemp(prefix="theorybench-test-runs-"))

import torch  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "ci", derandomize=True, max_examples=10, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# Two cores: one intra-op thread per process keeps timings and results stable under parallel load.
torch.set_num_threads(int(os.environ.get("THEORYBENCH_TEST_THREADS", "1")))
