"""``python -m routine.cli`` (e.g. ``accelerate launch -m routine.cli finetune ...``)."""

from . import main

raise SystemExit(main())
