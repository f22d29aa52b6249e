"""Test doubles of outside systems that have no local emulator."""
