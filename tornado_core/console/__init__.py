"""The operations console's logic: operator accounts and sessions, the audit log, job search, bulk actions,
the figures and queue samples its pages show. The pages themselves are in ``tornado_core/web/console``."""
