"""The faust-streaming worker, the file mode and the command line: wiring around ``transforms``."""
