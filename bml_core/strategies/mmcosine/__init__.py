"""mmcosine: the MMCosine head (STRATEGIES.md section 2.3)."""
