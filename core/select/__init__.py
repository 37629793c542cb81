"""Select: the selection strategies, their pool, allocation, the G2IS walk and the iterative loops' selection math."""
