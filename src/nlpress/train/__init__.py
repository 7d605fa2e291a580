"""Training: fine-tuning a teacher and distilling students, on Hugging Face ``accelerate``.

``losses`` holds the pure loss functions, ``student`` builds students from a teacher, ``loop`` is
the one training loop (single process, ``accelerate launch`` on several processes or GPUs),
``finetune`` and ``distill`` are the API functions that write artifacts.
"""
