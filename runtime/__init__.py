"""impsolve.runtime: implicit layers, nets, training, checks and results on a torch device."""
