"""Pipeline and configuration documents: YAML with positions, models, expressions, durations."""
