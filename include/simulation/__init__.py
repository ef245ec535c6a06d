"""Replay of demand history under Shelfwise's and classic reorder policies (see :mod:`.replay`)."""
