"""Score: quality scorers (perplexity, IFD, diversity, reward, heuristics), scoring a dataset, combined quality."""
