"""uni_aux: uni-modal auxiliary losses (STRATEGIES.md section 2.1)."""
