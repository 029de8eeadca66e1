"""Shadow experiments: a sample of live requests sent again to a cheaper candidate, the answers compared."""
