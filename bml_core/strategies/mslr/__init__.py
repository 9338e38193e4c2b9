"""mslr and mses: modality-specific learning rates and early stopping (STRATEGIES.md section 2.2)."""
