"""Streaming throughput harness: the product's worker against plain clients and other frameworks on one broker.

    python -m benchmarks.throughput [--events N] [--systems limit,aiokafka,...] [--quick] [--out DIR]

Five systems run the *same* :class:`transforms.process.RecordProcessor` over the *same* input:

* ``limit``: parse + transform + serialize in a tight loop, no Kafka (the ceiling for one process);
* ``aiokafka``: a plain aiokafka loop (getmany batch, process, batched sends, commit);
* ``quixstreams``: a Quix Streams application (librdkafka) whose StreamingDataFrame calls the processor;
* ``faust-naive``: a faust agent written the common way (per-event ``await topic.send()``, default settings);
* ``product``: the shipped worker, ``python -m pipeline.cli worker``, as a subprocess.

Each system's process is measured from outside (psutil samples, ``VmHWM``); the broker is the only one, on its
own port, and its CPU is sampled too. See :mod:`benchmarks.throughput.harness` for the method.
"""
