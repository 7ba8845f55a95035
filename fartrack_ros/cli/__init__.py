"""Command-line tools (plain Python, no ROS)."""
