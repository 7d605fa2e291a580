"""Calibration machinery shared by every data-driven method (GPTQ, AWQ, SmoothQuant, Wanda, SparseGPT)."""
