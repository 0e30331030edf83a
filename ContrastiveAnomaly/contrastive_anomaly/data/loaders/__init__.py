"""Loaders for real datasets a user already has (DATA.md §7); nothing is downloaded."""
