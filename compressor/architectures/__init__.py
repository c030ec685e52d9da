"""One file per architecture family, each holding its encoder and decoder."""
