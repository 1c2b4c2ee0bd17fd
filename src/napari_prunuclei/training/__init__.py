"""Floor 5: training a branch, fixed-mask fine-tuning, the channel ladder."""
