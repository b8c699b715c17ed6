"""``python -m iclmeta`` (and ``accelerate launch -m iclmeta``) run the CLI."""
import sys

from iclmeta.cli.main import main

sys.exit(main())
