"""The operations console's pages: server-rendered tornado templates behind operator sign-in."""
