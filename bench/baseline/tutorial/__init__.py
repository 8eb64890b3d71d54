"""The chat of the Channels tutorial, as a Django user would first deploy it: one group per
room, ``group_send`` through channels-redis' default layer, served by daphne.

Only what the benchmark needs differs from the tutorial: no HTML page, the Redis address and
database come from the environment, and ``DEBUG`` is off as in a deployment."""
