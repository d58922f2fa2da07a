"""kabin: a Kubernetes operator for interactive and batch compute sessions.

Sessions run in pods with the CPU, memory and GPUs they asked for, keep their
files on a drive that only one running session may hold, and end when idle or
when their time is up. See DESIGN.md for the picture and README.md to start.
"""

__version__ = "0.1.0"
