"""Sign-in for the web pages: one-time login links and browser sessions (see README.md)."""
