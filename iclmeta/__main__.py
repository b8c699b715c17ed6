"""``python -m iclmeta`` (and ``accelerate launch -m iclmeta``) run the CLI."""
import sys

from .cli import main

sys.exit(main())
