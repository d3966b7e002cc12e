"""`python -m qa_engine.cli`: the `qa-engine` command (for `torchrun` / `accelerate launch -m`)."""
import sys

from .main import main

sys.exit(main())
