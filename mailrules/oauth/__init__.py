"""OAuth2 sign-in to IMAP and SMTP servers.

``sasl`` builds the XOAUTH2 / OAUTHBEARER (RFC 7628) exchanges and reads a server's
refusal; ``tokens`` turns an account's ``oauth2`` settings into access tokens (a token
command, or a stored refresh token); ``store`` keeps refresh tokens in the system keyring
or a private file; ``grants`` runs the one-time authorization of ``mailrules auth``.
Access and refresh tokens are held only in memory or in the store, never in a message.
"""
