"""Floor 4: the Serve deployment: the HTTP and SSE routes, auth, settings, the CLI and `launch`."""
