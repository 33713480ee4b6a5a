"""Floor 2: the pluggable edges the domain calls through its protocols: history backends, App keys, model providers."""
