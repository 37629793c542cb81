"""Models: device choice, loading causal LMs and reward models, and the LM passes every stage shares."""
