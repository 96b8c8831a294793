"""Thin routers over the services: one use case (one unit of work) per request."""
