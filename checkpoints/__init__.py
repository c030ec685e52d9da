"""Shipped release checkpoints (one .safetensors per model); installed as compressor.checkpoints."""
