"""The HTTP edge shared by every listener (the API and both of the vault's): the edge
middleware, errors as HTTP, JSON responses, rate limits, health and metrics routes, list
parameters and the documented error bodies."""
