"""Scheduling: jobs due later than a queue holds them, and periodic schedules (cron in a time zone)."""
