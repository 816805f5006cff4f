"""Benchmarks of mailrules against imapfilter on a private Dovecot (see benchmarks/README.md)."""
