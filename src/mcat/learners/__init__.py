"""One module per loss of the method: dynamics (C + F + contrastive), TD3 (and later H and SIL)."""
