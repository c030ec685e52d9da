"""Measurement: what a codec costs and gives, as design.md defines it.

    evaluate.py  bytes and PSNR of a set of images, and batched frames/s
    bench.py     every model and the classic codecs side by side (`compressor bench`)
    classic.py   JPEG, WebP, AVIF, JPEG XL, JPEG 2000 fitted to a byte budget
    report.py    the bench's tables (JSON, markdown) and plots
    scaling.py   time and peak memory against resolution, each size in a fresh process
"""
