"""Training code for the CLIP-Driven Universal Model (prepare, train, evaluate, export).

Entry points::

    python -m training.prepare CONFIG
    python -m training.train CONFIG [--backbone swinunetr|unet] [--resume CKPT]
    python -m training.evaluate CONFIG --weights CKPT
    python -m training.export CKPT --out PATH [--official]

Multi-GPU: ``torchrun --nproc_per_node N -m training.train CONFIG``.
"""
