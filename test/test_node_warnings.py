"""The node's warnings are rate limited per kind, whatever target ids or numbers they name, so a
client sending many bad requests cannot flood the log."""

from __future__ import annotations


class _RecordingLogger:
    def __init__(self):
        self.lines: list[str] = []

    def warning(self, message, **_):
        self.lines.append(message)


def test_warnings_naming_different_ids_count_as_one_kind(rclpy_context):
    from fartrack_ros.node import FarTrackNode

    node = FarTrackNode(context=rclpy_context, managed=True)
    try:
        log = _RecordingLogger()
        node.get_logger = lambda: log
        for k in range(200):
            node._warn(f"remove ignored: no target 'uuid-{k:04x}' (tracked: ['a', 'b'])")
        node._warn("init ignored: the node is not configured")
        assert log.lines == ["remove ignored: no target 'uuid-0000' (tracked: ['a', 'b'])",
                             "init ignored: the node is not configured"]
    finally:
        node.destroy_node()
