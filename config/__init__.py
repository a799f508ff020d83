"""Configuration layer: settings only, read once and passed down."""
