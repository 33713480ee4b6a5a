"""Floor 3: thin Ray actors around the domain and the backends, and the runtime that routes calls to them."""
