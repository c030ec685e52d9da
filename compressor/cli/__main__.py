"""`python -m compressor.cli ...` is the `compressor` command, as it was when the CLI was one module."""
import sys

from compressor.cli import compressor_main

sys.exit(compressor_main())
