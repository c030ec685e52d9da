"""`python -m compressor ...` is the `compressor` command."""
import sys

from compressor.cli import compressor_main

sys.exit(compressor_main())
