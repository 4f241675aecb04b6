"""The streaming service around the chain: Kafka in, Kafka and MongoDB out, nothing lost.

:mod:`.messages` (wire formats, schema validation, DLQ headers), :mod:`.kafka` (client configs and the commit /
delivery plumbing the loops share), :mod:`.extraction` (running the chain on a batch), :mod:`.producer`,
:mod:`.worker`, :mod:`.sink`, :mod:`.dlq`, :mod:`.topics`, :mod:`.metrics`.
"""
