"""Mail stores the planner reads and the executor changes: IMAP (imap.py) and Maildir (maildir.py)."""
