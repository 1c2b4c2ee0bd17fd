"""Floor 4: magnitude pruning (layer-wise, network-wide), channel pruning, one-shot models."""
