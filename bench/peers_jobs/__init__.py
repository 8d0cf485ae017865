"""The identity job as each peer defines it, and the driver that times them.

These modules are imported by the peers' own worker commands, each in the
peer's venv made by ``bench/peers.py``; the project venv never imports them
except ``driver`` for erogaki and the floor.
"""
