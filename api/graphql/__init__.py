"""GraphQL at ``/graphql`` (Strawberry): ``schema`` (queries, mutations, subscriptions),
``types``, ``loaders`` (DataLoaders), ``context``, and ``app`` (the ASGI view)."""
