"""Tracking with FARTrack as a plain Python library: crops, template memory, many targets.

No ROS imports here; the node and the CLIs build on this layer.
"""

from .template_memory import TemplateMemory, schedule_slots
from .tracker import (MEMORY_MODES, TargetLimitError, TargetSnapshot, Tracker, TrackerConfig,
                      TrackResult, TrackState)

__all__ = ["MEMORY_MODES", "TargetLimitError", "TargetSnapshot", "TemplateMemory", "TrackResult", "TrackState",
           "Tracker", "TrackerConfig", "schedule_slots"]
