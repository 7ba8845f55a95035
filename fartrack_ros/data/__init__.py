"""Tracking data: the synthetic sequence generator and readers/writers for GOT-10k and LaSOT."""
