"""The app's routers, one per concern. Mounted in this order, which is also the OpenAPI order."""

from producer.http.routes import ops, results, tickets, webhooks

ROUTERS = (tickets.router, webhooks.router, results.router, ops.router)

__all__ = ["ROUTERS"]
