"""Pure privacy transforms and detection logic.

Everything here is synchronous and does no I/O on the per-event path: parsers, pseudonymization,
IP truncation, geo generalization, minimization and per-record abuse signals. Nothing in this
package imports ``faust`` or ``pipeline``, so the stream worker, the file mode, the tests and the
benchmarks all call exactly the same code.
"""
