"""CPU threads for training on a machine shared with other work.

PyTorch's CPU kernels run on OpenMP threads that meet at a barrier after every operator. libgomp's default wait
policy spins at the barrier, so when another process holds one of the cores, the thread that is not descheduled
burns its core waiting for the one that is, and each of the tiny model's thousands of small operators a step costs a
scheduler time slice: train-tiny ran 5x slower beside one busy process on 2 cores. Passive waiting hands the core
back at once, so training slows in proportion to the load (see the README's quick start for the figures)."""
from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)

WAIT_POLICY = "PASSIVE"


def share_cores() -> dict[str, object]:
    """Passive OpenMP waiting (unless OMP_WAIT_POLICY is set) and one torch thread per core this process may use.

    OpenMP reads its settings when torch loads it: call this before the first `import torch` to get the wait policy;
    the thread count applies whenever it is called."""
    if "torch" in sys.modules and "OMP_WAIT_POLICY" not in os.environ:
        log.info("torch was loaded before share_cores(): OpenMP keeps its spinning wait policy")
    os.environ.setdefault("OMP_WAIT_POLICY", WAIT_POLICY)
    import torch

    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    return {"omp_wait_policy": os.environ["OMP_WAIT_POLICY"], "torch_threads": torch.get_num_threads()}
