"""The durable pipeline engine: executions, stages, tasks, a message queue in the database, workers.

It knows nothing about AWS: stage types and the services they need are handed in.
"""
