"""Small rendering helpers and widgets for the TUI's screens (no advisor logic)."""
