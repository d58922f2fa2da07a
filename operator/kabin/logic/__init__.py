"""Pure decisions: no I/O, no clock reads (time is an argument).

Builders turn a spec and an environment into desired objects, status is
computed from observed objects, and admission, timeout and lock decisions are
made here, so that each is tested by a table of inputs and expected outputs.
"""
