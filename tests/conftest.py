"""Test-wide settings.

One thread per process, as the runner's workers use: on a small shared CPU, PyTorch's default of one thread
per core makes tiny models many times slower (threads wait on each other), and the tests would measure that
instead of the code.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
