"""What a developer or evaluator runs, never a service: synthetic traffic (:mod:`.synth`, :mod:`.load`),
the end-to-end demo (:mod:`.demo`), the benchmark (:mod:`.bench`), the local Kafka (:mod:`.localkafka`)
and the worker-process harness (:mod:`.workerproc`) they share with the tests.
"""
