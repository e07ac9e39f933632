"""Test data: small task packages the release tests deploy from their own directories."""
